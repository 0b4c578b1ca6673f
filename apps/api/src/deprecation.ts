import type { Config } from '@jobfleet/config';
import { deprecatedUsageRepository, type ApiKeyPrincipal, type Db, type DeprecatedUsageCount } from '@jobfleet/db';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Auth } from './plugins/auth';

// The retirement of /v1: every answer under it says so (RFC 9745 Deprecation, RFC 8594 Sunset,
// and where to go: a successor-version link), and each API key's calls to it are counted, so
// operators know who still calls it before it goes.

const V1_PREFIX = '/v1/';
/** Where a /v1 route without a /v2 equivalent points: the /v2 document. */
const V2_DOCUMENT_PATH = '/openapi/v2.json';

/** The /v2 equivalent of each /v1 route pattern that has one. */
export interface Successors {
  /** `v1Pattern` and `v2Template` in Fastify's syntax, e.g. `/v1/jobs/:id` and `/v2/jobs/:id`: the template names v1's parameters. */
  add(v1Pattern: string, v2Template: string): void;
  /** The /v2 path answering what `v1Pattern` with `params` answers, else the /v2 document. */
  of(v1Pattern: string | undefined, params: unknown): string;
}

export function createSuccessors(): Successors {
  const templates = new Map<string, string>();
  return {
    add: (v1Pattern, v2Template) => void templates.set(v1Pattern, v2Template),
    of(v1Pattern, params) {
      const template = v1Pattern === undefined ? undefined : templates.get(v1Pattern);
      if (template === undefined) return V2_DOCUMENT_PATH;
      // Fastify's path parameters are strings.
      const values = (params ?? {}) as Record<string, string | undefined>;
      return template.replace(/:(\w+)/g, (_match, name: string) => encodeURIComponent(values[name] ?? ''));
    },
  };
}

/** A call to count: one key, one route, the instant it was answered. */
export interface DeprecatedUsageCounter {
  count(caller: ApiKeyPrincipal, route: string, at: Date): void;
  /** Writes the counts gathered so far; a failure keeps them for the next flush. */
  flush(): Promise<void>;
  /** Stops the timer and writes what is left. */
  close(): Promise<void>;
}

// Keys × routes × days seen between two flushes: far below this unless something is wrong; past
// it the counts are written at once rather than held.
const MAX_PENDING_COUNTS = 10_000;

/**
 * Counts in memory and adds the counts to Postgres every `flushMs` in one statement: the hot path
 * costs a map update, never a round trip.
 */
export function createDeprecatedUsageCounter({ db, flushMs, log }: { db: Db; flushMs: number; log: FastifyBaseLogger }): DeprecatedUsageCounter {
  let pending = new Map<string, DeprecatedUsageCount>();
  let flushing: Promise<void> = Promise.resolve();

  async function write(): Promise<void> {
    if (pending.size === 0) return;
    const counts = pending;
    pending = new Map();
    try {
      await deprecatedUsageRepository.add(db, [...counts.values()]);
    } catch (err) {
      log.warn({ err, counts: counts.size }, 'could not write the deprecated-route counts; kept for the next flush');
      for (const [key, count] of counts) {
        if (pending.size >= MAX_PENDING_COUNTS) break;
        const newer = pending.get(key);
        pending.set(key, newer === undefined ? count : { ...newer, count: newer.count + count.count, lastSeen: newer.lastSeen > count.lastSeen ? newer.lastSeen : count.lastSeen });
      }
    }
  }
  // One flush at a time, so two never add the same counts.
  const flush = () => (flushing = flushing.then(write));

  const timer = setInterval(() => void flush(), flushMs);
  timer.unref();

  return {
    count(caller, route, at) {
      const day = at.toISOString().slice(0, 10);
      const key = JSON.stringify([caller.keyId, route, day]);
      const counted = pending.get(key);
      if (counted === undefined) pending.set(key, { keyId: caller.keyId, tenantId: caller.tenantId, route, day, count: 1, lastSeen: at });
      else {
        counted.count += 1;
        counted.lastSeen = at;
      }
      if (pending.size >= MAX_PENDING_COUNTS) void flush();
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}

/** RFC 9745 §2.1: a Structured Field Date, seconds since the epoch. */
const structuredDate = (at: Date) => `@${Math.floor(at.getTime() / 1000)}`;

export interface V1DeprecationDeps {
  v1: Config['api']['v1'];
  successors: Successors;
  usage: DeprecatedUsageCounter;
  auth: Auth;
}

/** Deprecation, Sunset and successor-version Link on every /v1 answer; each key's /v1 calls counted. */
export function installV1Deprecation(app: FastifyInstance, { v1, successors, usage, auth }: V1DeprecationDeps): void {
  const isV1 = (url: string) => url.startsWith(V1_PREFIX);
  app.addHook('onSend', async (request, reply) => {
    if (!isV1(request.url)) return;
    if (v1.deprecatedAt !== undefined) reply.header('deprecation', structuredDate(v1.deprecatedAt));
    if (v1.sunsetAt !== undefined) reply.header('sunset', v1.sunsetAt.toUTCString());
    reply.header('link', `<${successors.of(request.routeOptions.url, request.params)}>; rel="successor-version"`);
  });
  app.addHook('onResponse', async (request) => {
    const route = request.routeOptions.url;
    const caller = auth.caller(request);
    if (route === undefined || caller === undefined || !isV1(route)) return;
    usage.count(caller, `${request.method} ${route}`, new Date());
  });
  app.addHook('onClose', () => usage.close());
}
