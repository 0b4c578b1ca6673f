import { Redis, type RedisOptions } from 'ioredis';

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

/**
 * An ioredis client that reconnects forever with capped, jittered backoff and never crashes the
 * process on a connection error (callers attach their own `error` listener to log).
 *
 * A producer connection has no offline queue: a command sent while the connection is not ready
 * (Redis down, or the first connect still under way) is refused at once instead of waiting.
 * BullMQ waits for `ready` itself; direct callers can `await redis.ping()` after the `ready` event.
 */
export function createRedisConnection(url: string, role: RedisRole, options: RedisConnectionOptions = {}): Redis {
  const redis = new Redis(url, {
    connectionName: options.name,
    // Jitter keeps a fleet from reconnecting in lockstep after a Redis restart.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS) + Math.floor(Math.random() * 100),
    ...roleOptions(role, options),
  });
  // Without a listener ioredis prints every connection error to stderr; the owner logs instead.
  redis.on('error', () => undefined);
  return redis;
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
export function waitUntilReady(redis: Redis, timeoutMs: number): Promise<boolean> {
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
