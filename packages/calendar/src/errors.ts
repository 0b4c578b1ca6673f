import type { Common } from 'googleapis';
import { z } from 'zod';
import { DependencyUnavailableError, PermanentError, RateLimitedError, coerceError, NETWORK_ERROR_CODES, parseRetryAfter } from '@jobfleet/contracts';
import { assertNever } from './exhaustive';

/** The `dependency` named in our errors, metrics and logs. */
export const CALENDAR_DEPENDENCY = 'google-calendar';

export type CalendarOperation = 'insert' | 'get' | 'patch' | 'delete';

/** What one failed request told us, read once from whatever the googleapis client threw. */
export type CalendarFailure =
  | {
      kind: 'http';
      status: number;
      reason: string | undefined;
      message: string;
      retryAfterMs: number | undefined;
      /** The OAuth token exchange failed, not the Calendar request: its 404 is no answer about an event. */
      tokenExchange: boolean;
    }
  | { kind: 'network'; code: string; message: string }
  | { kind: 'local'; error: Error };

// Calendar errors: {"error":{"code","message","errors":[{"domain","reason","message"}]}};
// the OAuth token endpoint: {"error":"invalid_grant","error_description":"..."}.
const googleErrorBodySchema = z.object({
  error: z.union([
    z.object({
      message: z.string().optional(),
      errors: z.array(z.object({ reason: z.string().optional() })).optional(),
    }),
    z.string(),
  ]),
  error_description: z.string().optional(),
});

/** 403 reasons that mean "slow down" rather than "not allowed"; Google's guide says back off on each. */
const RATE_LIMIT_REASONS: ReadonlySet<string> = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'quotaExceeded']);

/** Connection failures (shared list) plus the codes this package's HTTP client uses for its own aborts. */
const TRANSPORT_ERROR_CODES: ReadonlySet<string> = new Set([
  ...NETWORK_ERROR_CODES,
  'TimeoutError', // gaxios: our per-request timeout fired
  'AbortError', // gaxios: the request was aborted
]);

/**
 * `tokenUrl`: where service-account tokens are fetched, when they are. `gaxiosError`: the class
 * from the loaded googleapis (it is imported lazily, see createCalendarClient).
 */
export function describeFailure(thrown: unknown, tokenUrl: string | undefined, gaxiosError: typeof Common.GaxiosError): CalendarFailure {
  if (!(thrown instanceof gaxiosError)) return { kind: 'local', error: coerceError(thrown) };
  const response = thrown.response;
  if (response) {
    const { reason, message } = readErrorBody(response.data);
    return {
      kind: 'http',
      status: response.status,
      reason,
      message: message ?? thrown.message,
      retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
      tokenExchange: tokenUrl !== undefined && String(thrown.config.url) === new URL(tokenUrl).href,
    };
  }
  const code = networkErrorCode(thrown);
  return code === undefined ? { kind: 'local', error: thrown } : { kind: 'network', code, message: thrown.message };
}

/** The one mapping from a failed Calendar request to the fleet's error vocabulary; keeps `thrown` as `cause`. */
export function toCalendarError(failure: CalendarFailure, operation: CalendarOperation, thrown: unknown): Error {
  switch (failure.kind) {
    case 'http': {
      const { status, reason, message, tokenExchange } = failure;
      const options = { cause: thrown, details: { status, reason, operation, ...(tokenExchange ? { tokenExchange } : {}) } };
      if (status === 429 || (status === 403 && reason !== undefined && RATE_LIMIT_REASONS.has(reason))) {
        return new RateLimitedError(CALENDAR_DEPENDENCY, failure.retryAfterMs, options);
      }
      const what = tokenExchange ? `the token exchange for ${operation}` : operation;
      const text = `${what} answered HTTP ${status}${reason ? ` ${reason}` : ''}: ${message}`;
      if (status >= 400 && status < 500 && status !== 408) {
        const code = constantCase(`${tokenExchange ? 'token ' : ''}${reason ?? `http ${status}`}`);
        return new PermanentError(`CALENDAR_${code}`, text, options);
      }
      // 5xx, 408, and anything a healthy Google never sends.
      return new DependencyUnavailableError(CALENDAR_DEPENDENCY, text, options);
    }
    case 'network':
      return new DependencyUnavailableError(CALENDAR_DEPENDENCY, `${operation} failed: ${failure.message}`, {
        cause: thrown,
        details: { status: undefined, reason: failure.code, operation },
      });
    case 'local':
      // Never reached Google (a bug, an unusable key): not ours to classify; the worker retries it as unknown.
      return failure.error;
    default:
      return assertNever(failure);
  }
}

function readErrorBody(data: unknown): { reason: string | undefined; message: string | undefined } {
  const parsed = googleErrorBodySchema.safeParse(data);
  if (!parsed.success) return { reason: undefined, message: undefined };
  const { error, error_description } = parsed.data;
  return typeof error === 'string'
    ? { reason: error, message: error_description }
    : { reason: error.errors?.[0]?.reason, message: error.message };
}

function networkErrorCode(error: Error): string | undefined {
  // gaxios copies the code of the error it wraps, but not always from deeper causes.
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const code: unknown = 'code' in current ? current.code : undefined;
    if (typeof code === 'string' && TRANSPORT_ERROR_CODES.has(code)) return code;
  }
  return undefined;
}

/** `notFound` -> `NOT_FOUND`, `invalid_grant` -> `INVALID_GRANT`, `http 400` -> `HTTP_400`. */
function constantCase(text: string): string {
  return text
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toUpperCase();
}
