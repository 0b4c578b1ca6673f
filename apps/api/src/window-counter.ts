import { createGroupCommit } from '@jobfleet/group-commit';
import type { RedisClient } from '@jobfleet/queue';

/**
 * Fixed-window request counters in Redis, shared by every API replica, counted in one MULTI for all
 * the requests of the moment. rate-limiter-flexible (which this replaced on the request path) sends
 * one script call per request and counter; at two counters per request that alone was most of the
 * Redis script budget of a job. Here the requests gathered while the previous MULTI was out share
 * the next: per counter one INCRBY of their sum, a PEXPIRE NX that starts the window with its
 * first count, and a PTTL; each request learns its own position in the window from the total.
 * The algorithm is rate-limiter-flexible's fixed window, with its keys (`<keyPrefix>:<key>`).
 */
export interface WindowCount {
  /** Points counted in the window up to and including this call's. */
  consumed: number;
  msBeforeReset: number;
}

export interface WindowCounter {
  /** Counts `points` against `key` in its current window. */
  add(key: string, points?: number): Promise<WindowCount>;
  /** Gives back points an earlier add counted (a refused request that must not count). */
  take(key: string, points?: number): Promise<void>;
}

interface Addition {
  key: string;
  points: number;
}

export function createRedisWindowCounter(redis: RedisClient, { keyPrefix, windowSeconds }: { keyPrefix: string; windowSeconds: number }): WindowCounter {
  const windowMs = windowSeconds * 1000;
  const redisKey = (key: string) => `${keyPrefix}:${key}`;

  async function flush(additions: readonly Addition[]): Promise<WindowCount[]> {
    const sums = new Map<string, number>();
    for (const { key, points } of additions) sums.set(key, (sums.get(key) ?? 0) + points);
    const transaction = redis.multi();
    for (const [key, sum] of sums) transaction.incrby(redisKey(key), sum).pexpire(redisKey(key), windowMs, 'NX').pttl(redisKey(key));
    const replies = (await transaction.exec()) ?? [];
    const windows = new Map<string, { firstBefore: number; msBeforeReset: number }>();
    [...sums].forEach(([key, sum], index) => {
      const [incr, , pttl] = replies.slice(index * 3, index * 3 + 3);
      for (const reply of [incr, pttl]) if (reply?.[0]) throw reply[0];
      const total = Number(incr?.[1]);
      const ttl = Number(pttl?.[1]);
      if (!Number.isFinite(total)) throw new Error(`unexpected INCRBY reply for ${key}: ${JSON.stringify(incr)}`);
      // A counter without expiry (-1) cannot come from this code; it would never reset, so say a window.
      windows.set(key, { firstBefore: total - sum, msBeforeReset: ttl >= 0 ? ttl : windowMs });
    });
    return additions.map(({ key, points }) => {
      const window = windows.get(key);
      if (window === undefined) throw new Error(`no count for ${key}`);
      window.firstBefore += points;
      return { consumed: window.firstBefore, msBeforeReset: window.msBeforeReset };
    });
  }

  // No conflict key: the same counter may take many additions in one MULTI.
  const gathered = createGroupCommit<Addition, WindowCount>({ flush, maxBatch: 1000 });

  return {
    add: (key, points = 1) => gathered.submit({ key, points }),
    async take(key, points = 1) {
      await redis.decrby(redisKey(key), points);
    },
  };
}
