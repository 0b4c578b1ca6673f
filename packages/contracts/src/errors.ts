/**
 * Failure vocabulary shared by connectors and the worker. The worker maps these onto BullMQ:
 * PermanentError -> UnrecoverableError (fail now), RateLimitedError -> retry after the hinted delay,
 * anything else -> retry with exponential backoff.
 */
export abstract class JobfleetError extends Error {
  abstract readonly code: string;
  abstract readonly retryable: boolean;
  /** Extra fields stored with the failure (status codes, dependency error codes). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = options.details ?? {};
  }
}

/** Can never succeed as sent: bad payload, 4xx from the dependency. */
export class PermanentError extends JobfleetError {
  readonly code: string;
  readonly retryable = false;
  constructor(code: string, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options);
    this.code = code;
  }
}

/** The dependency failed in a way that may pass: 5xx, timeout, connection reset. */
export class DependencyUnavailableError extends JobfleetError {
  readonly code = 'DEPENDENCY_UNAVAILABLE';
  readonly retryable = true;
  constructor(
    readonly dependency: string,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(`${dependency}: ${message}`, options);
  }
}

/** The dependency asked us to slow down; `retryAfterMs` is its hint when it gave one. */
export class RateLimitedError extends JobfleetError {
  readonly code = 'RATE_LIMITED';
  readonly retryable = true;
  constructor(
    readonly dependency: string,
    readonly retryAfterMs: number | undefined,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(`${dependency}: rate limited`, options);
  }
}

/**
 * A Retry-After header in milliseconds: delay-seconds or an HTTP-date (RFC 9110 §10.2.3);
 * undefined when absent or unreadable. The attempt policy waits at least this long.
 */
export function parseRetryAfter(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** An Error of any realm: Node's socket errors fail `instanceof Error` inside a vm context (jest's). */
export function isErrorLike(value: unknown): value is Error {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string';
}

/** Turns whatever was thrown into an Error, once, at the boundary that catches it. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(`Non-error thrown: ${JSON.stringify(thrown)}`);
  } catch {
    return new Error(`Non-error thrown: ${String(thrown)}`);
  }
}

/**
 * Node's codes for a connection that failed or broke: the request may or may not have reached the
 * dependency, so these are transient and the effect must be reconciled, never assumed.
 */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET', // also "socket hang up"
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
]);

/**
 * The job cannot run now for a reason outside itself (a busy lock, an unavailable dependency, a
 * worker short of memory). Retryable, and it says nothing about the job: the attempt policy
 * re-delays it for about `retryAfterMs` without spending an attempt (within the wait budget),
 * and its status reads `waiting: <waitReason>`.
 */
export abstract class WaitError extends JobfleetError {
  readonly retryable = true;
  /** Why it waits, for people: "afip-wsfe unavailable", "lock … busy". */
  abstract readonly waitReason: string;
  constructor(
    readonly retryAfterMs: number,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, { ...options, details: { retryAfterMs, ...options.details } });
  }
}

/**
 * `dependency` is known to be unusable for about `retryAfterMs` (an open breaker, a lost WSAA
 * ticket), so the call was not made or cannot succeed.
 */
export abstract class DependencyWaitError extends WaitError {
  readonly waitReason: string;
  constructor(
    readonly dependency: string,
    retryAfterMs: number,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(retryAfterMs, message, { ...options, details: { dependency, ...options.details } });
    this.waitReason = `${dependency} unavailable`;
  }
}

/** The circuit breaker of `dependency` is open: the call was not made. */
export class CircuitOpenError extends DependencyWaitError {
  readonly code = 'CIRCUIT_OPEN';
  constructor(dependency: string, retryAfterMs: number, options: { cause?: unknown } = {}) {
    super(dependency, retryAfterMs, `${dependency} unavailable: circuit open, next trial in ${Math.ceil(retryAfterMs / 1000)} s`, options);
  }
}

/**
 * A call to `dependency` could not reach it or lost its connection (an untyped driver error, e.g.
 * a Postgres query during an outage): nothing about the job is wrong, so it waits instead of
 * spending an attempt, like a call an open breaker refused.
 */
export class DependencyUnreachableError extends DependencyWaitError {
  readonly code = 'DEPENDENCY_UNREACHABLE';
  constructor(dependency: string, retryAfterMs: number, options: { cause?: unknown } = {}) {
    const reason = isErrorLike(options.cause) ? `: ${options.cause.message}` : '';
    super(dependency, retryAfterMs, `${dependency} unreachable${reason}`, options);
  }
}

/** A failure as stored in Postgres (sync_status.last_error, backups.error): enough to explain it without the logs. */
export interface StoredError {
  name: string;
  code: string;
  message: string;
  details?: Record<string, unknown>;
  at: string;
}

export function toStoredError(error: Error): StoredError {
  const typed = error instanceof JobfleetError ? error : undefined;
  return {
    name: error.name,
    code: typed?.code ?? 'UNEXPECTED',
    message: error.message,
    ...(typed && Object.keys(typed.details).length > 0 ? { details: { ...typed.details } } : {}),
    at: new Date().toISOString(),
  };
}
