import type { Cluster, Redis } from 'ioredis';
import type { Dependency } from '@jobfleet/config';
import type { BreakerState } from './guard';

/**
 * Breakers live in each worker; this Redis hash is the fleet's view of them, for the API's
 * readiness body: a dependency whose breaker last changed to open or half-open somewhere.
 */
export const breakerViewKey = (prefix: string): string => `${prefix}:breakers`;

interface PublishedState {
  state: BreakerState;
  workerId: string;
  at: number;
}

// A worker that died with an open breaker never publishes the close: forget its word after this.
const STALE_AFTER_MS = 5 * 60_000;

/** Records a transition; never throws (the breaker must not depend on Redis being up). */
export function publishBreakerState(redis: Redis | Cluster, prefix: string, workerId: string, dependency: Dependency, state: BreakerState): void {
  const value: PublishedState = { state, workerId, at: Date.now() };
  redis.hset(breakerViewKey(prefix), dependency, JSON.stringify(value)).catch(() => undefined);
}

/** Dependencies some worker recently saw failing (breaker open or half-open), with who and since when. */
export async function readDegradedDependencies(redis: Redis | Cluster, prefix: string, now = Date.now()): Promise<Record<string, { state: BreakerState; since: string; workerId: string }>> {
  const entries = await redis.hgetall(breakerViewKey(prefix));
  const degraded: Record<string, { state: BreakerState; since: string; workerId: string }> = {};
  for (const [dependency, raw] of Object.entries(entries)) {
    let published: PublishedState;
    try {
      published = JSON.parse(raw) as PublishedState;
    } catch {
      continue;
    }
    if (published.state === 'closed' || now - published.at > STALE_AFTER_MS) continue;
    degraded[dependency] = { state: published.state, since: new Date(published.at).toISOString(), workerId: published.workerId };
  }
  return degraded;
}

/**
 * Dependency failures counted across the fleet in a window: `countFleetFailure` for the guards.
 * The window starts at the first failure and is not renewed by later ones, so the count returns
 * to zero within `windowMs` of the last outage. Never throws: without Redis, it counts nothing.
 */
export function createFleetFailureCounter(redis: Redis | Cluster, prefix: string): (dependency: Dependency, windowMs: number) => Promise<number> {
  return async (dependency, windowMs) => {
    const key = `${prefix}:dependency-failures:${dependency}`;
    try {
      // SET NX gives a new window its expiry; INCR keeps it. One transaction: no key without a TTL.
      const replies = await redis.multi().set(key, '0', 'PX', windowMs, 'NX').incr(key).exec();
      const count = replies?.[1]?.[1];
      return typeof count === 'number' ? count : 0;
    } catch {
      return 0;
    }
  };
}
