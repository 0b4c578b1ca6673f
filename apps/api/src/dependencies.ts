import { DependencyUnavailableError, coerceError } from '@jobfleet/contracts';
import { classifyPostgresError } from '@jobfleet/db';
import { DeadlineExceededError, withDeadline } from '@jobfleet/observability';
import type { RedisClient, RedisConnections } from '@jobfleet/queue';

type Dependency = 'redis' | 'postgres';

/**
 * Upper bound on one call to a dependency from a request. Redis answers in well under a millisecond
 * when healthy; 3 s trips on an outage (a lost connection is refused at once, below) and leaves room
 * for a replica starved of CPU under a burst, which should answer late rather than 503. Postgres
 * gets the pool's own connection timeout, since a burst of requests may queue for a pooled connection.
 */
const DEPENDENCY_TIMEOUT_MS: Readonly<Record<Dependency, number>> = { redis: 3000, postgres: 5000 };

/** Whether a database error means "Postgres is unavailable" (see classifyPostgresError) or our deadline passed. */
function isPostgresUnavailable(error: Error): boolean {
  return error instanceof DeadlineExceededError || classifyPostgresError(error) === 'unavailable';
}

/**
 * Runs a call to a dependency under its deadline and turns an outage into DependencyUnavailableError
 * (a 503 with Retry-After). Redis errors all count as outages: our commands are fixed, so a failure
 * is the connection's. Postgres errors count only when they are about availability.
 */
async function callDependency<T>(dependency: Dependency, work: () => Promise<T>): Promise<T> {
  try {
    return await withDeadline(work(), DEPENDENCY_TIMEOUT_MS[dependency], dependency);
  } catch (thrown) {
    const error = coerceError(thrown);
    if (dependency === 'redis' || isPostgresUnavailable(error)) {
      throw new DependencyUnavailableError(dependency, error.message, { cause: error });
    }
    throw error;
  }
}

export type DependencyCall = <T>(work: () => Promise<T>) => Promise<T>;

/** A Postgres call from a request, bounded and with outages made 503s. */
export const callPostgres: DependencyCall = (work) => callDependency('postgres', work);

// ioredis states in which the connection is lost (a first connect is `connecting`/`connect`).
const REDIS_DOWN_STATES: ReadonlySet<string> = new Set(['reconnecting', 'close', 'end']);

/**
 * Redis calls over `connection`, bounded and with outages made 503s. BullMQ waits for a lost
 * connection to come back; these refuse at once instead. A connection still connecting gets the
 * deadline: right after boot it is about to be ready.
 */
export function redisCaller(connection: RedisClient): DependencyCall {
  return (work) =>
    REDIS_DOWN_STATES.has(connection.status)
      ? Promise.reject(new DependencyUnavailableError('redis', `connection is ${connection.status}`))
      : callDependency('redis', work);
}

/** redisCaller over the Redis that holds `queue` (its jobs and its tenant-capacity counters). */
export function queueRedisCaller(connections: Pick<RedisConnections, 'forQueue'>): (queue: string) => DependencyCall {
  return (queue) => redisCaller(connections.forQueue(queue));
}
