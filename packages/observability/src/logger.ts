import { hostname } from 'node:os';
import pino, { type DestinationStream, type Logger } from 'pino';

export interface LoggerOptions {
  /** pino level: fatal, error, warn, info, debug, trace or silent. */
  level: string;
  /** Written as `service` on every line. */
  serviceName: string;
  /** Where lines go; default stdout (synchronous, so nothing is lost on exit). */
  destination?: DestinationStream;
}

const CENSOR = '[redacted]';

// Secrets that travel in requests, configs, tenant connections (AFIP keys, Google service-account
// keys, OAuth tokens) and dependency errors. A `*.x` path matches one level down only, so the
// top-level names and the request headers are listed on their own; anything deeper is not caught.
const SECRET_KEYS = [
  'apiKey',
  'api_key',
  'password',
  'secret',
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'clientSecret',
  'client_secret',
  'privateKey',
  'private_key',
  'privateKeyPem',
  'secretAccessKey',
];
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  '*.authorization',
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((key) => `*.${key}`),
];

/**
 * JSON logs, one object a line, with `service`, `pid` and `hostname` on each. Errors logged as
 * `{ err }` keep their type, message, stack, own fields (a JobfleetError's `code` and `details`)
 * and every `cause` as a nested object of the same shape.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: options.serviceName, pid: process.pid, hostname: hostname() },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: CENSOR },
      // The default `err` serializer folds causes into one message string and drops their fields.
      serializers: { err: pino.stdSerializers.errWithCause },
    },
    options.destination,
  );
}
