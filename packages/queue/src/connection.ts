import { parseRedisTarget, type QueueRedisInstance, type RedisTarget } from '@jobfleet/config';
import { withDeadline } from '@jobfleet/observability';
import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** A connection to one Redis deployment: a single server or a Redis Cluster (BullMQ takes either). */
export type RedisClient = Redis | Cluster;

/**
 * `worker`: BullMQ workers (blocking commands); commands wait through reconnects.
 * `producer`: request paths (API enqueue, health); commands fail fast while Redis is down.
 */
export type RedisRole = 'worker' | 'producer';

export interface RedisConnectionOptions {
  /** CLIENT SETNAME, to find this process in `CLIENT LIST`. */
  name?: string;
  /** Producer only: a command without a reply after this long fails. Default 1000 ms. */
  commandTimeoutMs?: number;
}

const MAX_RECONNECT_DELAY_MS = 5000;
// Jitter keeps a fleet from reconnecting in lockstep after a Redis restart.
const reconnectDelay = (times: number) => Math.min(50 * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS) + Math.floor(Math.random() * 100);

/**
 * An ioredis client that reconnects forever with capped, jittered backoff and never crashes the
 * process on a connection error (callers attach their own `error` listener to log). `target` is a
 * Redis URL (redis://, rediss://, redis-cluster://host:port,host:port) or one parsed by config; a
 * cluster gives an ioredis Cluster with the same role options on every node connection.
 *
 * A producer connection has no offline queue: a command sent while the connection is not ready
 * (Redis down, or the first connect still under way) is refused at once instead of waiting.
 * BullMQ waits for `ready` itself; direct callers can `await redis.ping()` after the `ready` event.
 */
export function createRedisConnection(target: RedisTarget | string, role: RedisRole, options: RedisConnectionOptions = {}): RedisClient {
  const parsed = typeof target === 'string' ? parseRedisTarget(target) : target;
  const { enableOfflineQueue, ...nodeOptions }: RedisOptions = { connectionName: options.name, ...roleOptions(role, options) };
  const redis =
    parsed.mode === 'single'
      ? new Redis(parsed.url, { ...nodeOptions, ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }), retryStrategy: reconnectDelay })
      : new Cluster([...parsed.nodes], {
          clusterRetryStrategy: reconnectDelay,
          // The cluster keeps the offline queue (node connections always have one of their own).
          enableOfflineQueue: enableOfflineQueue ?? true,
          redisOptions: { ...nodeOptions, username: parsed.username, password: parsed.password, ...(parsed.tls ? { tls: {} } : {}) },
        });
  // Without a listener ioredis prints every connection error to stderr; the owner logs instead.
  redis.on('error', () => undefined);
  return redis;
}

/**
 * A connection of its own for SUBSCRIBE, to the same deployment as `client` (a subscribed
 * connection takes no other command). It waits through reconnects, and ioredis subscribes again
 * after one; Redis Cluster forwards PUBLISH to every node, so any node serves.
 */
export function createSubscriberConnection(client: RedisClient, name: string): RedisClient {
  const subscriber =
    client instanceof Cluster ? client.duplicate() : client.duplicate({ connectionName: name, enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined });
  subscriber.on('error', () => undefined);
  return subscriber;
}

function roleOptions(role: RedisRole, options: RedisConnectionOptions): RedisOptions {
  switch (role) {
    case 'worker':
      // BullMQ refuses anything else for the blocking connection it duplicates from this one.
      return { maxRetriesPerRequest: null };
    case 'producer':
      return {
        maxRetriesPerRequest: 1,
        enableOfflineQueue: false,
        connectTimeout: 500,
        commandTimeout: options.commandTimeoutMs ?? 1000,
      };
    default: {
      const unknown: never = role;
      throw new Error(`unknown Redis role ${String(unknown)}`);
    }
  }
}

/**
 * Resolves true once the connection is ready, false after `timeoutMs` (it keeps reconnecting).
 * A producer refuses commands until then, so a process waits here briefly before serving.
 */
export function waitUntilReady(redis: RedisClient, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    redis.once('ready', onReady);
  });
}

/**
 * The Redis connections of one process: `main` (REDIS_URL) for fleet-wide state (locks, request
 * rate limits, the breaker view, caches) and every queue not placed elsewhere, and one connection
 * per REDIS_QUEUE_URLS instance for the queues it holds, with everything that belongs to them
 * (BullMQ's keys, tenant-capacity counters).
 */
export interface RedisConnections {
  main: RedisClient;
  /** The connection of `queue`'s Redis. */
  forQueue: (queue: string) => RedisClient;
  /** The name of `queue`'s Redis: `main`, or its QueueRedisInstance name. */
  instanceOf: (queue: string) => string;
  /** Every instance by name, `main` first: readiness pings each, metrics label by them. */
  instances: ReadonlyMap<string, RedisClient>;
  disconnect(): void;
}

/** The name of REDIS_URL's instance in RedisConnections.instances (and `redis_connection_up`). */
export const MAIN_REDIS = 'main';

export function connectRedis(
  topology: { main: RedisTarget | string; queueInstances?: readonly QueueRedisInstance[] },
  role: RedisRole,
  options: RedisConnectionOptions = {},
): RedisConnections {
  const main = createRedisConnection(topology.main, role, options);
  const instances = new Map<string, RedisClient>([[MAIN_REDIS, main]]);
  const byQueue = new Map<string, string>();
  for (const instance of topology.queueInstances ?? []) {
    instances.set(instance.name, createRedisConnection(instance.target, role, options));
    for (const queue of instance.queues) byQueue.set(queue, instance.name);
  }
  const instanceOf = (queue: string) => byQueue.get(queue) ?? MAIN_REDIS;
  return {
    main,
    forQueue: (queue) => instances.get(instanceOf(queue)) ?? main,
    instanceOf,
    instances,
    disconnect: () => {
      for (const client of instances.values()) client.disconnect();
    },
  };
}

/** The readiness check of the main Redis; another instance's is `redis:<name>`. */
export const REDIS_CHECK = 'redis';

/** A readiness probe (PING, bounded) per Redis instance, named `redis` (main) and `redis:<name>`. */
export function redisProbes(instances: ReadonlyMap<string, RedisClient>, timeoutMs: number): Record<string, () => Promise<unknown>> {
  return Object.fromEntries(
    [...instances].map(([name, client]) => {
      const check = name === MAIN_REDIS ? REDIS_CHECK : `${REDIS_CHECK}:${name}`;
      return [check, () => withDeadline(pingEveryNode(client), timeoutMs, `${check} ping`)];
    }),
  );
}

/** PING; on a cluster, every master, since a cluster with a master down cannot serve all its slots. */
async function pingEveryNode(client: RedisClient): Promise<unknown> {
  if (!(client instanceof Cluster)) return client.ping();
  if (client.status !== 'ready') throw new Error(`the cluster connection is ${client.status}`);
  return Promise.all(client.nodes('master').map((node) => node.ping()));
}
