import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { FakeEventStore, type FakeCalendarEvent } from './event-store';
import { googleError, type Reply } from './replies';
import { exchangeToken } from './token-endpoint';

export interface FakeCalendarOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
}

/** An error the next event requests answer with, in Google's shape. */
export interface FakeCalendarFault {
  status: 429 | 403 | 500 | 502 | 503;
  /** Default: `rateLimitExceeded` for 403 and 429, `backendError` for 5xx. */
  reason?: string;
  /** Sent as the Retry-After header. */
  retryAfterSeconds?: number;
}

export interface FakeCalendarOutageScope {
  method?: string;
  calendarId?: string;
}

export interface FakeCalendar {
  /** Pass as `rootUrl` to `google.calendar()` (ends with a slash). */
  readonly rootUrl: string;
  /** The fake OAuth token endpoint, for service-account and refresh-token auth. */
  readonly tokenUrl: string;
  /** Stored events, deleted ones (status "cancelled") included; copies. */
  listEvents(calendarId?: string): FakeCalendarEvent[];
  /** Successful inserts, of one event id or of all. */
  insertCount(eventId?: string): number;
  /** Event requests received, faulted and refused ones included. */
  requestCount(method?: string): number;
  /** Access tokens the token endpoint handed out, oldest first. */
  issuedTokens(): string[];
  /** Bearer tokens the event requests carried, oldest first. */
  receivedTokens(): string[];
  /** The next `count` event requests answer `fault` instead of being served. */
  failNext(count: number, fault: FakeCalendarFault): void;
  /**
   * An outage: every event request answers `fault` until `setOutage(null)`; with a scope, only the
   * requests of that method (PATCH, ...) and/or calendar do.
   */
  setOutage(fault: FakeCalendarFault | null, scope?: FakeCalendarOutageScope): void;
  /** Delays every event response by `ms`; the request takes effect before the wait, as a slow network would have it. */
  setLatency(ms: number): void;
  /** Forgets events, counts, tokens, faults and latency. */
  reset(): void;
  /** Stops listening and drops every connection, idle keep-alive ones included. */
  close(): Promise<void>;
}

const EVENTS_PATH = /^\/calendar\/v3\/calendars\/([^/]+)\/events(?:\/([^/]+))?$/;
const TOKEN_PATH = '/token';
/** Far above any event we write; bounds the memory one request can take. */
const MAX_BODY_BYTES = 1024 * 1024;

const FAULT_DEFAULT_REASONS: Readonly<Record<FakeCalendarFault['status'], string>> = {
  403: 'rateLimitExceeded',
  429: 'rateLimitExceeded',
  500: 'backendError',
  502: 'backendError',
  503: 'backendError',
};

/** Domain and message Google sends with each reason (Calendar "Handle API errors" guide). */
const REASON_TEXT: Readonly<Record<string, { domain: string; message: string }>> = {
  rateLimitExceeded: { domain: 'usageLimits', message: 'Rate Limit Exceeded' },
  userRateLimitExceeded: { domain: 'usageLimits', message: 'User Rate Limit Exceeded' },
  quotaExceeded: { domain: 'usageLimits', message: 'Calendar usage limits exceeded.' },
  dailyLimitExceeded: { domain: 'usageLimits', message: 'Daily Limit Exceeded' },
  backendError: { domain: 'global', message: 'Backend Error' },
};

/** A fake Google Calendar v3 (events only) and OAuth token endpoint, over real HTTP. */
export async function startFakeCalendar(options: FakeCalendarOptions = {}): Promise<FakeCalendar> {
  const { port = 0, host = '127.0.0.1' } = options;
  const store = new FakeEventStore();
  const requests = new Map<string, number>();
  const faults: FakeCalendarFault[] = [];
  let outage: { fault: FakeCalendarFault; scope: FakeCalendarOutageScope } | null = null;
  const issuedTokens: string[] = [];
  const receivedTokens: string[] = [];
  let latencyMs = 0;
  // Aborts the latency waits of in-flight requests on close.
  const shutdown = new AbortController();

  const server = createServer((request, response) => {
    serve(request, response).catch((error: unknown) => {
      write(response, googleError(500, 'backendError', `fake Calendar failed: ${String(error)}`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port: boundPort } = server.address() as AddressInfo;
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
  const tokenUrl = `${origin}${TOKEN_PATH}`;

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const { pathname } = new URL(request.url ?? '/', origin);
    const method = request.method ?? 'GET';
    const body = await readBody(request);
    if (pathname === TOKEN_PATH && method === 'POST') {
      write(response, body === undefined ? tooLarge() : token(body));
      return;
    }
    const route = EVENTS_PATH.exec(pathname);
    if (!route) {
      write(response, googleError(404, 'notFound', 'Not Found'));
      return;
    }
    requests.set(method, (requests.get(method) ?? 0) + 1);
    const reply = answerEventRequest(method, route, body, request.headers.authorization);
    if (latencyMs > 0) {
      try {
        await delay(latencyMs, undefined, { signal: shutdown.signal });
      } catch {
        return; // closing: the connection is being dropped anyway
      }
    }
    write(response, reply);
  }

  function answerEventRequest(
    method: string,
    route: RegExpExecArray,
    body: Buffer | undefined,
    authorization: string | undefined,
  ): Reply {
    if (body === undefined) return tooLarge();
    const authFailure = checkAuthorization(authorization);
    if (authFailure) return authFailure;
    const path = decodePath(route);
    const inOutage = outage !== null && (outage.scope.method ?? method) === method && (outage.scope.calendarId ?? path?.calendarId) === path?.calendarId;
    const fault = inOutage ? outage?.fault : faults.shift();
    if (fault) return faultReply(fault);
    if (!path) return googleError(400, 'invalid', 'Invalid path encoding.');
    const json = parseJson(body);
    if (!json.ok) return googleError(400, 'parseError', 'Parse Error');
    return store.handle({ method, ...path, body: json.value });
  }

  function checkAuthorization(authorization: string | undefined): Reply | undefined {
    const headers = { 'www-authenticate': 'Bearer realm="https://accounts.google.com/"' };
    if (!authorization?.trim()) {
      return googleError(
        401,
        'required',
        'Request is missing required authentication credential. ' +
          'Expected OAuth 2 access token, login cookie or other valid authentication credential.',
        { location: 'Authorization', locationType: 'header', headers },
      );
    }
    const token = /^Bearer\s+(\S+)$/i.exec(authorization.trim())?.[1];
    if (!token) {
      return googleError(401, 'authError', 'Invalid Credentials', { location: 'Authorization', locationType: 'header', headers });
    }
    receivedTokens.push(token);
    return undefined;
  }

  function token(body: Buffer): Reply {
    const exchange = exchangeToken(new URLSearchParams(body.toString('utf8')), tokenUrl);
    if (exchange.granted) issuedTokens.push(exchange.accessToken);
    return exchange.reply;
  }

  return {
    rootUrl: `${origin}/`,
    tokenUrl,
    listEvents: (calendarId) => store.list(calendarId),
    insertCount: (eventId) => store.insertCount(eventId),
    requestCount: (method) =>
      method === undefined ? [...requests.values()].reduce((sum, n) => sum + n, 0) : (requests.get(method.toUpperCase()) ?? 0),
    issuedTokens: () => [...issuedTokens],
    receivedTokens: () => [...receivedTokens],
    failNext(count, fault) {
      for (let i = 0; i < count; i++) faults.push(fault);
    },
    setOutage(fault, scope) {
      outage = fault === null ? null : { fault, scope: scope ?? {} };
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    reset() {
      store.clear();
      requests.clear();
      faults.length = 0;
      outage = null;
      issuedTokens.length = 0;
      receivedTokens.length = 0;
      latencyMs = 0;
    },
    async close() {
      shutdown.abort();
      const closed = new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
      server.closeAllConnections();
      await closed;
    },
  };
}

function faultReply(fault: FakeCalendarFault): Reply {
  const reason = fault.reason ?? FAULT_DEFAULT_REASONS[fault.status];
  const text = REASON_TEXT[reason] ?? { domain: 'global', message: reason };
  const headers = fault.retryAfterSeconds === undefined ? undefined : { 'retry-after': String(fault.retryAfterSeconds) };
  return googleError(fault.status, reason, text.message, { domain: text.domain, headers });
}

function decodePath(route: RegExpExecArray): { calendarId: string; eventId: string | undefined } | undefined {
  try {
    // Calendar ids are often e-mail addresses: clients percent-encode them.
    return {
      calendarId: decodeURIComponent(route[1] ?? ''),
      eventId: route[2] === undefined ? undefined : decodeURIComponent(route[2]),
    };
  } catch {
    return undefined; // malformed percent-encoding
  }
}

function parseJson(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  if (body.length === 0) return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) };
  } catch {
    return { ok: false };
  }
}

function tooLarge(): Reply {
  return googleError(413, 'uploadTooLarge', 'Request Entity Too Large');
}

/** The whole body, or undefined when it exceeds MAX_BODY_BYTES (read to the end, so the connection stays usable). */
async function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  return size <= MAX_BODY_BYTES ? Buffer.concat(chunks) : undefined;
}

function write(response: ServerResponse, reply: Reply): void {
  if (response.headersSent || response.destroyed) return;
  const body = reply.body === undefined ? '' : JSON.stringify(reply.body);
  response.writeHead(reply.status, {
    ...(reply.body === undefined ? {} : { 'content-type': 'application/json; charset=UTF-8' }),
    ...reply.headers,
  });
  response.end(body);
}
