import type { Socket } from 'node:net';
import { DependencyUnavailableError } from '@jobfleet/contracts';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';

// Every error answer is one RFC 9457 shape, produced here and nowhere else. /v2 answers it with
// the RFC's own names for field errors (detail and a JSON pointer) and the occurrence (instance);
// /v1 keeps the form it was published with.

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

interface ProblemField {
  path: string;
  message: string;
}

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: ProblemField[];
  [extension: string]: unknown;
}

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Seconds a client should wait before retrying after a 503. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

/** An error that is answered as a problem; throw it from any hook or handler. */
export class HttpProblem extends Error {
  override readonly name = 'HttpProblem';
  readonly status: number;
  readonly type: string;
  readonly errors: ProblemField[] | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /** RFC 9457 extension members: facts a client can act on (which quota, its limit). */
  readonly extensions: Readonly<Record<string, unknown>>;

  constructor(
    status: number,
    detail: string,
    options: { type?: string; errors?: ProblemField[]; headers?: Record<string, string>; extensions?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.type = options.type ?? 'about:blank';
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.extensions = options.extensions ?? {};
  }

  toProblem(): Problem {
    return {
      ...this.extensions,
      type: this.type,
      title: TITLES[this.status] ?? 'Error',
      status: this.status,
      detail: this.message,
      ...(this.errors === undefined ? {} : { errors: this.errors }),
    };
  }

  /**
   * The problem as /v2 answers it: each field error as `{detail, pointer}` (RFC 9457 §3's
   * example; the pointer, RFC 6901, is into the input the detail names), and `instance`, the
   * occurrence: the request's path, or a part of it (a batch's job).
   */
  toRfc9457(instance: string): Rfc9457Problem {
    const { errors, ...problem } = this.toProblem();
    return {
      ...problem,
      instance,
      ...(errors === undefined ? {} : { errors: errors.map(({ path, message }) => ({ detail: message, pointer: jsonPointer(path) })) }),
    };
  }
}

type Rfc9457Problem = Omit<Problem, 'errors'> & { instance: string; errors?: { detail: string; pointer: string }[] };

/** A dotted field path (`start.dateTime`) as a JSON pointer fragment (`#/start/dateTime`); the whole input is `#`. */
function jsonPointer(path: string): string {
  if (path === '') return '#';
  // RFC 6901 escapes, then percent-encoding for the fragment (RFC 6901 §6).
  return `#/${path
    .split('.')
    .map((token) => encodeURIComponent(token.replaceAll('~', '~0').replaceAll('/', '~1')))
    .join('/')}`;
}

/** The path the request asked for, without its query string (Fastify's `url` keeps it). */
export const requestPath = (request: FastifyRequest): string => request.url.split('?')[0] ?? '';

/** Whether a request is /v2's, whose problems take the /v2 form. */
const isV2Request = (request: FastifyRequest) => request.url.startsWith('/v2/');

/** The body of `problem` for `request`, in the form of the request's API version. */
function problemBodyFor(request: FastifyRequest, problem: HttpProblem, instance = requestPath(request)): Problem | Rfc9457Problem {
  return isV2Request(request) ? problem.toRfc9457(instance) : problem.toProblem();
}

/** zod issues as a 400 with one entry per issue, paths dotted (`start.dateTime`, `attendees.0.email`). */
function validationProblem(what: string, error: z.ZodError, status: 400 | 422): HttpProblem {
  return new HttpProblem(status, `${what} is invalid`, {
    type: '/problems/validation',
    errors: error.issues.flatMap((issue) =>
      // One entry per unknown field, at its own path, rather than one for the object holding them.
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((key) => ({ path: [...issue.path, key].map(String).join('.'), message: 'unknown field' }))
        : [{ path: issue.path.map(String).join('.'), message: issue.message }],
    ),
  });
}

/**
 * Parses with zod or throws the validation problem: 400 for a malformed header or path, 422 for a
 * well-formed JSON body whose content is refused (it names every offending field).
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string, status: 400 | 422 = 400): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationProblem(what, parsed.error, status);
  return parsed.data;
}

function unavailableProblem(error: DependencyUnavailableError): HttpProblem {
  return new HttpProblem(503, `${error.dependency} is unavailable; retry later`, {
    type: '/problems/dependency-unavailable',
    headers: { 'retry-after': String(UNAVAILABLE_RETRY_AFTER_SECONDS) },
    cause: error,
  });
}

function sendProblem(reply: FastifyReply, problem: HttpProblem): FastifyReply {
  return reply.code(problem.status).headers(problem.headers).type(PROBLEM_CONTENT_TYPE).send(problemBodyFor(reply.request, problem));
}

/** Fastify's own errors (body parsing, limits, content type) carry a 4xx statusCode worth passing on. */
function isClientError(error: unknown): error is FastifyError & { statusCode: number } {
  const status = (error as Partial<FastifyError> | null)?.statusCode;
  return typeof status === 'number' && status >= 400 && status < 500;
}

function fromUnknown(error: unknown): HttpProblem | undefined {
  if (error instanceof HttpProblem) return error;
  if (error instanceof DependencyUnavailableError) return unavailableProblem(error);
  if (isClientError(error)) {
    return new HttpProblem(error.statusCode, error.message, { type: error.code ? `/problems/${error.code}` : undefined });
  }
  return undefined;
}

/** An unexpected failure's answer: its detail stays in the logs, as it may reveal internals. */
const unexpectedProblem = () => new HttpProblem(500, 'An unexpected error occurred; it has been logged');

/**
 * Answers any error as a problem. The app's error handler uses it; so do hooks running inside
 * plugins that install their own error handler (Bull Board), where a throw would not reach ours.
 */
export function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  const problem = fromUnknown(error);
  if (problem !== undefined) {
    if (problem.status >= 500) request.log.warn({ err: problem.cause ?? problem }, problem.message);
    return sendProblem(reply, problem);
  }
  request.log.error({ err: error }, 'unhandled error');
  return sendProblem(reply, unexpectedProblem());
}

/**
 * For an onSend hook of a plugin that answers errors in a shape of its own (Bull Board): the
 * problem body that replaces the error body it serialized, with the content type set. A 5xx
 * detail is logged, not sent.
 */
export function replaceWithProblem(request: FastifyRequest, reply: FastifyReply, detail: string): string {
  let problem = new HttpProblem(reply.statusCode, detail);
  if (reply.statusCode >= 500) {
    request.log.error({ statusCode: reply.statusCode }, `a plugin answered ${reply.statusCode}: ${detail}`);
    problem = unexpectedProblem();
  }
  reply.type(PROBLEM_CONTENT_TYPE);
  return JSON.stringify(problem.toProblem());
}

// What Node reports for a client that broke the protocol or ran out of time before a route saw it.
function clientErrorProblem(code: string | undefined): HttpProblem {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new HttpProblem(408, 'The request did not arrive in time');
    case 'HPE_HEADER_OVERFLOW':
      return new HttpProblem(431, 'The request headers are too large');
    default:
      return new HttpProblem(400, 'The request is not valid HTTP');
  }
}

/**
 * Fastify's clientErrorHandler: Node's own refusals (request or headers timeout, malformed HTTP)
 * answered as a problem too, written on the socket as no reply exists; the connection is closed.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  // A reset connection has no one left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const problem = clientErrorProblem(error.code);
  const body = JSON.stringify(problem.toProblem());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${problem.status} ${TITLES[problem.status] ?? 'Error'}\r\n` +
        `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * Installs the one error handler and the not-found handler of the app: 405 with `Allow` when the
 * path exists under other methods, else 404. Call before any route is registered, so that every
 * route's methods are seen.
 */
export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  const methods = new Set<string>();
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) methods.add(method);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = requestPath(request);
    // findRoute matches a concrete path (router.find); its types omit the null it returns for no match.
    const allowed = [...methods].filter((method) => (app.findRoute({ method, url: path }) as object | null) !== null);
    // A route of this very method that called callNotFound (a missing static file) means 404.
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      const allow = allowed.join(', ');
      return sendProblem(reply, new HttpProblem(405, `${request.method} is not allowed on ${path}; it takes ${allow}`, { headers: { allow } }));
    }
    return sendProblem(reply, new HttpProblem(404, `No route ${request.method} ${path}`));
  });
}
