import { DependencyUnavailableError, coerceError } from '@jobfleet/contracts';
import { DeadlineExceededError, withDeadline } from '@jobfleet/observability';
import type { Redis } from 'ioredis';

type Dependency = 'redis' | 'postgres';

/**
 * Upper bound on one call to a dependency from a request. Redis answers in well under a millisecond
 * when healthy; 3 s trips on an outage (a lost connection is refused at once, below) and leaves room
 * for a replica starved of CPU under a burst, which should answer late rather than 503. Postgres
 * gets the pool's own connection timeout, since a burst of requests may queue for a pooled connection.
 */
const DEPENDENCY_TIMEOUT_MS: Readonly<Record<Dependency, number>> = { redis: 3000, postgres: 5000 };

// SQLSTATE classes that mean "the server is not there or not serving": connection exception,
// insufficient resources, operator intervention (shutdown), system error.
const UNAVAILABLE_SQLSTATE = /^(08|53|57P|58)/;
const SQLSTATE = /^[0-9A-Z]{5}$/;

// pg's own messages when it cannot reach or keep a connection (it gives them no code).
const PG_CONNECTION_MESSAGE = /timeout exceeded when trying to connect|Connection terminated|Client has encountered a connection error/i;

/**
 * Whether a database error means "Postgres is unavailable" rather than a bug in our query: a SQLSTATE
 * of the classes above, a socket error, pg's connection messages, or our deadline.
 * Drizzle wraps driver errors, so the cause chain is searched.
 */
function isPostgresUnavailable(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof DeadlineExceededError || PG_CONNECTION_MESSAGE.test(e.message)) return true;
    // Node's socket errors name the failed system call; an AggregateError of them (one per address) does not.
    if ('syscall' in e) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    if (SQLSTATE.test(code)) return UNAVAILABLE_SQLSTATE.test(code);
    if (/^E[A-Z]+$/.test(code)) return true;
  }
  return false;
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
export function redisCaller(connection: Redis): DependencyCall {
  return (work) =>
    REDIS_DOWN_STATES.has(connection.status)
      ? Promise.reject(new DependencyUnavailableError('redis', `connection is ${connection.status}`))
      : callDependency('redis', work);
}
