import fastifyHelmet from '@fastify/helmet';
import type { FastifyInstance, FastifyReply } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';

/** CSP directives by name, each with its sources. */
type CspDirectives = Readonly<Record<string, readonly string[]>>;

const copy = (directives: CspDirectives): Record<string, string[]> =>
  Object.fromEntries(Object.entries(directives).map(([name, sources]) => [name, [...sources]]));

// The API answers JSON: nothing in it may load anything, and nobody may frame it.
const API_POLICY: CspDirectives = {
  'default-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
};

// A page we serve (the docs, Bull Board) runs its own scripts and calls its own API, nothing more.
const PAGE_POLICY: CspDirectives = {
  'default-src': ["'self'"],
  'script-src': ["'self'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'font-src': ["'self'"],
  'connect-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'self'"],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
};

// helmet reads a route's own options from its config (see usePagePolicy).
declare module 'fastify' {
  interface FastifyContextConfig {
    helmet?: { contentSecurityPolicy: { useDefaults: false; directives: Record<string, string[]> } };
  }
}

/** The strict API policy, no framing (X-Frame-Options DENY), nosniff, no Referer; helmet's defaults beside. */
const HELMET_OPTIONS = {
  contentSecurityPolicy: { useDefaults: false, directives: copy(API_POLICY) },
  frameguard: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
} satisfies HelmetOptions;

/** helmet's headers (HSTS, same-origin opener and resource policies among them) on every answer. Register before any route. */
export async function registerSecurityHeaders(app: FastifyInstance): Promise<void> {
  await app.register(fastifyHelmet, HELMET_OPTIONS);
}

const apiHeaders = helmet(HELMET_OPTIONS);

/** The same headers on an answer sent before any hook ran (Fastify's frameworkErrors: a malformed URL). */
export function setSecurityHeaders(reply: FastifyReply): void {
  apiHeaders(reply.request.raw, reply.raw, () => undefined);
}

/**
 * The page policy, widened by `extra` sources, for every route registered in `scope` from now
 * on (a plugin's routes included): for the HTML pages and their assets.
 */
export function usePagePolicy(scope: FastifyInstance, extra: CspDirectives = {}): void {
  const directives = copy(PAGE_POLICY);
  for (const [name, sources] of Object.entries(extra)) directives[name] = [...(directives[name] ?? []), ...sources];
  // Set on the route's config, not its `helmet` option: helmet's own onRoute hook (inherited from
  // the root, so it runs before this one) has already read that option.
  scope.addHook('onRoute', (route) => {
    route.config = { ...route.config, helmet: { contentSecurityPolicy: { useDefaults: false, directives } } };
  });
}

