import type { Redis } from 'ioredis';
import { connectRedis, createRedisConnection, MAIN_REDIS } from './connection';
import { disconnectUnreachable, readyConnection } from './test-support';

const DEAD_REDIS = 'redis://127.0.0.1:1';

describe('createRedisConnection', () => {
  it('a producer connection to a dead port rejects a command in under a second', async () => {
    const redis = createRedisConnection(DEAD_REDIS, 'producer');
    try {
      const started = performance.now();
      await expect(redis.ping()).rejects.toThrow();
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      await disconnectUnreachable(redis);
    }
  });

  it('a worker connection keeps a command waiting through failed reconnects, without crashing on errors', async () => {
    const redis = createRedisConnection(DEAD_REDIS, 'worker');
    const errors: Error[] = [];
    redis.on('error', (err: Error) => errors.push(err));
    try {
      expect((redis as Redis).options.maxRetriesPerRequest).toBeNull();
      const pending = redis.ping().then(
        () => 'answered',
        () => 'rejected',
      );
      const outcome = await Promise.race([pending, new Promise((resolve) => setTimeout(resolve, 500, 'still waiting'))]);
      expect(outcome).toBe('still waiting');
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      await disconnectUnreachable(redis);
    }
  });

  it('names the connection in CLIENT LIST', async () => {
    const redis = await readyConnection('producer');
    try {
      await expect(redis.client('GETNAME')).resolves.toBe('jftest-producer');
    } finally {
      redis.disconnect();
    }
  });

  it('connectRedis gives the queues of a REDIS_QUEUE_URLS instance its connection, and every other queue main', () => {
    const redis = connectRedis(
      { main: DEAD_REDIS, queueInstances: [{ name: 'afip-sync+backup', target: { mode: 'single', url: 'redis://127.0.0.1:2' }, queues: ['afip-sync', 'backup'] }] },
      'producer',
    );
    try {
      expect([...redis.instances.keys()]).toEqual([MAIN_REDIS, 'afip-sync+backup']);
      expect(redis.forQueue('afip-sync')).toBe(redis.instances.get('afip-sync+backup'));
      expect(redis.forQueue('backup')).toBe(redis.forQueue('afip-sync'));
      expect(redis.forQueue('calendar-sync')).toBe(redis.main);
      expect(redis.forQueue('a-kind-config-does-not-know')).toBe(redis.main);
      expect([redis.instanceOf('backup'), redis.instanceOf('calendar-sync')]).toEqual(['afip-sync+backup', MAIN_REDIS]);
    } finally {
      redis.disconnect();
    }
  });
});
