import { authenticateApiKey, hashApiKey, recordApiKeyUse, type ApiKeyPrincipal, type ApiKeyScope, type Db } from '@jobfleet/db';
import { bearerToken, secretEquals } from '@jobfleet/secrets';
import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { HttpProblem } from '../problem';
import { callPostgres } from '../dependencies';
import type { AuthFailureLimiter } from './auth-failures';
import type { RequestLimiter } from '../rate-limit';

export interface AuthOptions {
  db: Db;
  /** How long a key lookup (found or not) is reused; bounds how late a revocation bites. Default 5000. */
  cacheTtlMs?: number;
  admin: { user: string; password: string };
  /** Counts failed authentications per client address and refuses an address over the limit (429). */
  failures: AuthFailureLimiter;
  /**
   * Counts each request that `requireScope` or `requireTenantAdmin` authenticates against its
   * tenant's and key's rate limits; `requireOperator`'s fleet-wide routes are not tenant traffic.
   */
  limiter: RequestLimiter;
}

/** Who performed an administrative action, as the admin audit records it. */
export interface AdminActor {
  /** "api-key:<key id>" or "operator:<user>" (HTTP Basic). */
  actor: string;
  /** The tenant of the actor's API key; null for the operator's Basic credentials. */
  actorTenantId: string | null;
}

export function apiKeyActor(principal: ApiKeyPrincipal): AdminActor {
  return { actor: `api-key:${principal.keyId}`, actorTenantId: principal.tenantId };
}

export interface Auth {
  /**
   * onRequest hook: a valid (known, unrevoked, unexpired) API key carrying `scope`, else 401/403;
   * 429 from an address with too many failed authentications, or over the key's rate limits.
   */
  requireScope(scope: ApiKeyScope): onRequestAsyncHookHandler;
  /**
   * For a tenant's own administration: `fleet:admin` reaches every tenant, `admin` its own only;
   * anything else is 403; 429 over its rate limits. Call after `requireScope('jobs:read')`-style
   * authentication, or alone (the request is counted once either way).
   */
  requireTenantAdmin(request: FastifyRequest, tenantId: string): Promise<ApiKeyPrincipal>;
  /**
   * For fleet-wide operations (Bull Board shows every tenant's jobs; backups dump every tenant's
   * data): resolves for a `fleet:admin` API key or HTTP Basic with the operator credentials, else
   * throws 401/403. A tenant's `admin` key is refused. Resolves to the actor, for the admin audit.
   */
  requireOperator(request: FastifyRequest): Promise<AdminActor>;
  /** onRequest hook of a fleet-wide route: `requireOperator`, its actor kept for `operator(request)`. */
  operatorOnly: onRequestAsyncHookHandler;
  /** The actor of a request that passed `operatorOnly`. */
  operator(request: FastifyRequest): AdminActor;
  /** The caller of a request that passed `requireScope`. */
  principal(request: FastifyRequest): ApiKeyPrincipal;
  /** The valid API key a request presented, whatever the route required of it; undefined if none. */
  caller(request: FastifyRequest): ApiKeyPrincipal | undefined;
}

const REALM = 'jobfleet';
// Beyond this many distinct keys the cache starts over, so random keys cannot grow it without bound.
const CACHE_MAX_ENTRIES = 10_000;
// last_used_at is for humans deciding which keys to retire: a minute's precision is plenty.
const LAST_USE_WRITE_INTERVAL_MS = 60_000;

function bearerChallenge(detail: string, error?: 'invalid_token'): HttpProblem {
  const challenge = error === undefined ? `Bearer realm="${REALM}"` : `Bearer realm="${REALM}", error="${error}"`;
  return new HttpProblem(401, detail, { headers: { 'www-authenticate': challenge } });
}

function presentedApiKey(request: FastifyRequest): string | undefined {
  const bearer = bearerToken(request.headers.authorization);
  if (bearer !== undefined) return bearer;
  const header = request.headers['x-api-key'];
  return typeof header === 'string' && header.length > 0 ? header : undefined;
}

function basicCredentials(request: FastifyRequest): { user: string; password: string } | undefined {
  const encoded = request.headers.authorization?.match(/^Basic\s+([A-Za-z0-9+/=]+)\s*$/i)?.[1];
  if (encoded === undefined) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function createAuth(options: AuthOptions): Auth {
  const ttlMs = options.cacheTtlMs ?? 5000;
  // Keyed by the key's hash; holds the promise so concurrent requests with one key share one lookup.
  const cache = new Map<string, { lookup: Promise<ApiKeyPrincipal | null>; expiresAt: number }>();
  const principals = new WeakMap<FastifyRequest, ApiKeyPrincipal>();
  const operators = new WeakMap<FastifyRequest, AdminActor>();
  // Every valid key seen, also by requireOperator (which grants no principal()): for usage counts.
  const callers = new WeakMap<FastifyRequest, ApiKeyPrincipal>();
  // Key id -> when this process last recorded its use.
  const lastUseWrites = new Map<string, number>();

  function lookup(key: string): Promise<ApiKeyPrincipal | null> {
    const id = hashApiKey(key);
    const now = Date.now();
    const hit = cache.get(id);
    if (hit !== undefined && hit.expiresAt > now) return hit.lookup;
    if (cache.size >= CACHE_MAX_ENTRIES) cache.clear();
    const pending = callPostgres(() => authenticateApiKey(options.db, key));
    cache.set(id, { lookup: pending, expiresAt: now + ttlMs });
    // A failed lookup (database down) must not be remembered, nor evict a newer one.
    pending.catch(() => {
      if (cache.get(id)?.lookup === pending) cache.delete(id);
    });
    return pending;
  }

  function recordUse(request: FastifyRequest, keyId: string): void {
    const now = Date.now();
    if ((lastUseWrites.get(keyId) ?? -Infinity) > now - LAST_USE_WRITE_INTERVAL_MS) return;
    if (lastUseWrites.size >= CACHE_MAX_ENTRIES) lastUseWrites.clear();
    lastUseWrites.set(keyId, now);
    // Not awaited: bookkeeping must neither delay nor fail the request it describes.
    recordApiKeyUse(options.db, keyId).catch((err: unknown) => request.log.warn({ err, keyId }, 'could not record the API key use'));
  }

  /** The principal of a valid key, or null for an unknown, revoked or expired one. */
  async function principalOf(request: FastifyRequest, key: string): Promise<ApiKeyPrincipal | null> {
    const principal = await lookup(key);
    // A cached principal must not outlive its key's expiry.
    if (principal === null || (principal.expiresAt !== null && principal.expiresAt.getTime() <= Date.now())) return null;
    recordUse(request, principal.keyId);
    callers.set(request, principal);
    return principal;
  }

  /** Refuses wrong credentials, counting them against the caller's address (429 once over the limit). */
  async function refuse(request: FastifyRequest, problem: HttpProblem): Promise<never> {
    await options.failures.recordFailure(request.ip, request.log);
    throw problem;
  }

  async function authenticate(request: FastifyRequest): Promise<ApiKeyPrincipal> {
    options.failures.assertNotBlocked(request.ip);
    // No key at all is no guess: refused, not counted.
    const key = presentedApiKey(request);
    if (key === undefined) throw bearerChallenge('An API key is required (Authorization: Bearer <key> or X-Api-Key)');
    const principal = await principalOf(request, key);
    if (principal === null) return refuse(request, bearerChallenge('The API key is unknown, revoked or expired', 'invalid_token'));
    await options.limiter.admit(request, principal);
    return principal;
  }

  async function requireOperator(request: FastifyRequest): Promise<AdminActor> {
    options.failures.assertNotBlocked(request.ip);
    const basic = basicCredentials(request);
    const key = basic === undefined ? presentedApiKey(request) : undefined;
    if (basic !== undefined) {
      // Both compared, always, so the time taken does not tell which one was wrong.
      const userOk = secretEquals(basic.user, options.admin.user);
      const passwordOk = secretEquals(basic.password, options.admin.password);
      if (userOk && passwordOk) return { actor: `operator:${basic.user}`, actorTenantId: null };
    } else if (key !== undefined) {
      const principal = await principalOf(request, key);
      if (principal?.scopes.includes('fleet:admin')) return apiKeyActor(principal);
      if (principal !== null) throw new HttpProblem(403, 'Fleet-wide operations need the "fleet:admin" scope; a tenant\'s "admin" key sees its own tenant only');
    }
    const challenge = new HttpProblem(401, 'Operator credentials (HTTP Basic) or an API key with the "fleet:admin" scope are required', {
      headers: { 'www-authenticate': `Basic realm="${REALM}-admin", charset="UTF-8"` },
    });
    // No credentials at all is a browser asking for the Basic prompt, not a guess.
    if (basic === undefined && key === undefined) throw challenge;
    return refuse(request, challenge);
  }

  return {
    requireScope(scope) {
      return async (request) => {
        const principal = await authenticate(request);
        if (!principal.scopes.includes(scope)) {
          throw new HttpProblem(403, `The API key lacks the "${scope}" scope`);
        }
        principals.set(request, principal);
      };
    },

    async requireTenantAdmin(request, tenantId) {
      const principal = await authenticate(request);
      principals.set(request, principal);
      if (principal.scopes.includes('fleet:admin')) return principal;
      if (!principal.scopes.includes('admin')) throw new HttpProblem(403, 'The API key lacks the "admin" scope');
      if (principal.tenantId !== tenantId) throw new HttpProblem(403, `An "admin" key administers its own tenant only, not "${tenantId}"`);
      return principal;
    },

    requireOperator,

    async operatorOnly(request) {
      operators.set(request, await requireOperator(request));
    },

    operator(request) {
      const actor = operators.get(request);
      if (actor === undefined) throw new Error('operator() called on a route without operatorOnly');
      return actor;
    },

    principal(request) {
      const principal = principals.get(request);
      if (principal === undefined) throw new Error('principal() called on a route without requireScope');
      return principal;
    },

    caller: (request) => callers.get(request),
  };
}
