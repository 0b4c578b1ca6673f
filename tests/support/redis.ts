import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { parseRedisTarget, type Config, type RedisTarget } from '@jobfleet/config';
import { connectRedis, createRedisConnection, waitUntilReady, type RedisClient, type RedisConnections, type RedisRole } from '@jobfleet/queue';
import { Cluster } from 'ioredis';
import { TEST_REDIS_URL } from './env';

export { TEST_REDIS_URL };

/** The tests run against a Redis Cluster (`npm run test:e2e:cluster`): prefixes are hash-tagged then. */
export const TEST_REDIS_IS_CLUSTER = parseRedisTarget(TEST_REDIS_URL).mode === 'cluster';

/**
 * A queue prefix no other test file uses. On a cluster it is a hash tag, so each file's keys share
 * one slot (as production's `{jobfleet}` does) and different files land on different nodes.
 */
export function uniquePrefix(label: string): string {
  const prefix = `jftest:${label}:${randomBytes(4).toString('hex')}`;
  return TEST_REDIS_IS_CLUSTER ? `{${prefix}}` : prefix;
}

/** The connections a process of `config` opens: its main Redis and each REDIS_QUEUE_URLS instance. */
export function connectTestRedis(config: Pick<Config, 'redis'>, role: RedisRole, name: string): RedisConnections {
  return connectRedis({ main: config.redis.main ?? TEST_REDIS_URL, queueInstances: config.redis.queueInstances }, role, { name });
}

/** The keys matching `pattern` (SCAN, never KEYS): on a cluster, of every master. */
export async function scanKeys(redis: RedisClient, pattern: string): Promise<string[]> {
  if (redis instanceof Cluster && redis.status !== 'ready') await once(redis, 'ready');
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const keys: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
  }
  return keys;
}

/** Deletes every key under the prefix, on the test Redis or on `target`. */
export async function deletePrefix(prefix: string, target: RedisTarget | string = TEST_REDIS_URL): Promise<void> {
  const redis = createRedisConnection(target, 'worker', { name: 'jftest-cleanup' });
  try {
    if (!(await waitUntilReady(redis, 5000))) throw new Error(`cannot reach the Redis to delete ${prefix}:* from`);
    // One key per command: on a cluster a command may not span slots.
    await Promise.all((await scanKeys(redis, `${prefix}:*`)).map((key) => redis.unlink(key)));
  } finally {
    redis.disconnect();
  }
}
