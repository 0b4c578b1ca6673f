import { PermanentError, isErrorLike } from '@jobfleet/contracts';
import { DrizzleQueryError } from 'drizzle-orm';

/**
 * What a Postgres error means for the caller, decided in one place for the API and the worker:
 * - `unavailable`: the server is not there or not serving (connection exception 08, insufficient
 *   resources 53, operator intervention 57P, system error 58, a socket error, pg's own connection
 *   messages): an outage, which opens the breaker and makes jobs wait.
 * - `transient`: the statement lost a race it may win next time (serialization failure, deadlock,
 *   lock not available): retried, never an outage.
 * - `bug`: any other SQLSTATE (a constraint, a type, a syntax error): deterministic, so retrying
 *   cannot help; the job fails with the error and no breaker opens.
 * - `other`: not a Postgres error at all.
 * Drizzle wraps driver errors, so the cause chain is searched.
 */
export type PostgresErrorClass = 'unavailable' | 'transient' | 'bug' | 'other';

const UNAVAILABLE_SQLSTATE = /^(08|53|57P|58)/;
const TRANSIENT_SQLSTATE = new Set(['40001', '40P01', '55P03']);
const SQLSTATE = /^[0-9A-Z]{5}$/;
// pg's own messages when it cannot reach or keep a connection (it gives them no code).
const PG_CONNECTION_MESSAGE = /timeout exceeded when trying to connect|Connection terminated|Client has encountered a connection error|Cannot use a pool after calling end/i;

export function classifyPostgresError(error: unknown): PostgresErrorClass {
  for (let e: unknown = error; isErrorLike(e); e = e.cause) {
    if (PG_CONNECTION_MESSAGE.test(e.message)) return 'unavailable';
    // Node's socket errors name the failed system call; an AggregateError of them (one per address) does not.
    if ('syscall' in e) return 'unavailable';
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    if (SQLSTATE.test(code)) {
      if (UNAVAILABLE_SQLSTATE.test(code)) return 'unavailable';
      return TRANSIENT_SQLSTATE.has(code) ? 'transient' : 'bug';
    }
    if (/^E[A-Z]+$/.test(code)) return 'unavailable';
  }
  return 'other';
}

/**
 * Whether `error` is a query itself (not a typed error made of one) that failed because Postgres
 * could not be reached or the connection broke: a statement that never ran or was cut, whatever it was.
 */
export function isUnreachablePostgresQuery(error: unknown): boolean {
  return error instanceof DrizzleQueryError && classifyPostgresError(error) === 'unavailable';
}

/** Runs `work` again (up to `tries` times in all) while it fails for a lost race (`transient`: a deadlock, a serialization failure). */
export async function retryLostRaces<T>(work: () => Promise<T>, tries = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= tries || classifyPostgresError(error) !== 'transient') throw error;
    }
  }
}

/**
 * A statement Postgres refused for what it is (`bug`) as a PermanentError that says why: the
 * server's message and SQLSTATE, where drizzle's own message is only the SQL text and its
 * parameters. Undefined for any other error. The original stays the `cause`.
 */
export function postgresRefusal(error: unknown): PermanentError | undefined {
  if (classifyPostgresError(error) !== 'bug') return undefined;
  for (let e: unknown = error; isErrorLike(e); e = e.cause) {
    const { code, table, constraint, column } = e as { code?: unknown; table?: unknown; constraint?: unknown; column?: unknown };
    if (typeof code !== 'string' || !SQLSTATE.test(code)) continue;
    const details = { sqlstate: code, ...named({ table, constraint, column }) };
    return new PermanentError('POSTGRES_REFUSED', `Postgres refused the statement: ${e.message} (SQLSTATE ${code})`, { cause: error, details });
  }
  return undefined;
}

function named(fields: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}
