import { z } from 'zod';
import { DependencyUnavailableError, DependencyWaitError, JobfleetError, coerceError, NETWORK_ERROR_CODES } from '@jobfleet/contracts';

/** The `dependency` named in our errors, metrics and logs. */
export const WSAA_DEPENDENCY = 'afip-wsaa';
export const WSFE_DEPENDENCY = 'afip-wsfe';

/**
 * WSAA refused a login because it already issued a ticket (TA) for this certificate and service
 * that is still valid (fault `coe.alreadyAuthenticated`). WSAA answered as designed, so this is
 * no outage and never opens a breaker; `createTicketProvider` decides what it means.
 */
export class WsaaAlreadyAuthenticatedError extends JobfleetError {
  readonly code = 'AFIP_WSAA_ALREADY_AUTHENTICATED';
  readonly retryable = true;
}

/**
 * AFIP holds a valid ticket the fleet does not have (a worker died or timed out during its login,
 * or Redis lost the cache), and refuses new logins until that ticket expires (at most 12 h after
 * it was issued). Invoices wait, without spending attempts, and the login is tried again every
 * `retryAfterMs`.
 */
export class WsaaTicketLostError extends DependencyWaitError {
  readonly code = 'AFIP_WSAA_TICKET_LOST';
  constructor(
    readonly cuit: number,
    readonly service: string,
    /** When the lost ticket expires at the latest; new logins succeed from then on. */
    readonly expiresBy: Date,
    retryAfterMs: number,
    options: { cause?: unknown } = {},
  ) {
    super(
      WSAA_DEPENDENCY,
      retryAfterMs,
      `WSAA already issued a ticket for CUIT ${cuit} and service ${service} that the fleet does not have (a worker died or ` +
        `timed out during the login, or the cache was lost); no new one can be obtained before it expires, at the latest ` +
        `${expiresBy.toISOString()}; next login try in ${Math.ceil(retryAfterMs / 1000)} s`,
      { ...options, details: { cuit, service, reason: 'alreadyAuthenticated', expiresBy: expiresBy.toISOString() } },
    );
  }
}

// A round's other invoices come back after this; the attempt policy waits at least 1 s anyway.
const ROUND_CALL_RETRY_MS = 1000;

/**
 * A call made for a whole round of invoices of one series (RegXReq, the last number, a lot's
 * FECAESolicitar) failed as an outage. One invoice of the round carries that failure and spends
 * an attempt, as a call of its own would; the others get this wait and spend none. Were every
 * invoice charged, each failure an outage lets through before the breakers open would cost an
 * attempt of every invoice waiting on the series at once, and a few of them fail the invoices.
 */
export class RoundCallFailedError extends DependencyWaitError {
  readonly code = 'AFIP_ROUND_CALL_FAILED';
  constructor(failure: DependencyUnavailableError) {
    super(failure.dependency, ROUND_CALL_RETRY_MS, `${failure.message} (a call made for this invoice's whole round; another invoice of the round spent the attempt)`, {
      cause: failure,
    });
  }
}

/** What one failed SOAP call told us, read once from whatever the soap client threw. */
export type SoapFailure =
  /** A SOAP Fault envelope; `faultCode` without its namespace prefix (`ns1:coe.alreadyAuthenticated` -> `coe.alreadyAuthenticated`). */
  | { kind: 'fault'; status: number | undefined; faultCode: string; message: string }
  /** An HTTP answer that is no SOAP response: an error page, a 5xx, a body soap could not parse. */
  | { kind: 'http'; status: number; message: string }
  /** The connection failed or our deadline fired: the request may or may not have been processed. */
  | { kind: 'network'; code: string; message: string }
  /** Never reached the wire (a bug, a WSDL that does not load): not ours to classify. */
  | { kind: 'local'; error: Error };

/** Connection failures (shared list) plus the codes this package's HTTP client uses for its own aborts. */
const TRANSPORT_ERROR_CODES: ReadonlySet<string> = new Set([
  ...NETWORK_ERROR_CODES,
  'ERR_CANCELED', // axios: our AbortSignal deadline fired
  'ERR_NETWORK',
]);

// A text node from soap's parser is either a string or `{ $value, attributes }`.
const textSchema = z.union([z.string(), z.object({ $value: z.string() }).transform((node) => node.$value)]);

// soap attaches the parsed envelope as `root` when the body was a Fault (SOAP 1.1 or 1.2).
const thrownSchema = z.object({
  response: z.object({ status: z.number() }).optional(),
  root: z
    .object({
      Envelope: z.object({
        Body: z.object({
          Fault: z.object({
            faultcode: textSchema.optional(),
            faultstring: textSchema.optional(),
            Code: z.object({ Value: textSchema }).optional(),
            Reason: z.object({ Text: textSchema }).optional(),
          }),
        }),
      }),
    })
    .optional(),
});

export function describeSoapFailure(thrown: unknown): SoapFailure {
  const error = coerceError(thrown);
  const parsed = thrownSchema.safeParse(thrown);
  const status = parsed.success ? parsed.data.response?.status : undefined;
  const fault = parsed.success ? parsed.data.root?.Envelope.Body.Fault : undefined;
  if (fault) {
    const code = fault.faultcode ?? fault.Code?.Value ?? 'unknown';
    return {
      kind: 'fault',
      status,
      faultCode: code.slice(code.indexOf(':') + 1),
      message: fault.faultstring ?? fault.Reason?.Text ?? error.message,
    };
  }
  const code = networkErrorCode(error);
  if (code !== undefined) return { kind: 'network', code, message: error.message };
  if (status !== undefined) return { kind: 'http', status, message: error.message };
  return { kind: 'local', error };
}

/** The transport part of the mapping, shared by both services: every answer but a local bug may pass. */
export function toUnavailableError(dependency: string, operation: string, failure: SoapFailure, thrown: unknown): Error {
  switch (failure.kind) {
    case 'fault':
      return new DependencyUnavailableError(dependency, `${operation} answered SOAP fault ${failure.faultCode}: ${failure.message}`, {
        cause: thrown,
        details: { operation, status: failure.status, faultCode: failure.faultCode },
      });
    case 'http':
      return new DependencyUnavailableError(dependency, `${operation} answered HTTP ${failure.status} without a SOAP response`, {
        cause: thrown,
        details: { operation, status: failure.status },
      });
    case 'network':
      return new DependencyUnavailableError(dependency, `${operation} failed: ${failure.message}`, {
        cause: thrown,
        details: { operation, reason: failure.code },
      });
    case 'local':
      return failure.error;
    default: {
      const unhandled: never = failure;
      return unhandled;
    }
  }
}

function networkErrorCode(error: Error): string | undefined {
  // axios copies the code of the socket error it wraps, but not always from deeper causes.
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const code: unknown = 'code' in current ? current.code : undefined;
    if (typeof code === 'string' && TRANSPORT_ERROR_CODES.has(code)) return code;
  }
  return undefined;
}
