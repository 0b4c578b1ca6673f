import { createHash } from 'node:crypto';
import { bearerToken, secretEquals } from '@jobfleet/secrets';
import { authenticateApiKey, type ApiKeyPrincipal, type ApiKeyScope, type Db } from '@jobfleet/db';
import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { HttpProblem } from '../problem';
import { callPostgres } from '../dependencies';

export interface AuthOptions {
  db: Db;
  /** How long a key lookup (found or not) is reused; bounds how late a revocation bites. Default 5000. */
  cacheTtlMs?: number;
  admin: { user: string; password: string };
}

export interface Auth {
  /** onRequest hook: a valid, unrevoked API key carrying `scope`, else 401/403. */
  requireScope(scope: ApiKeyScope): onRequestAsyncHookHandler;
  /**
   * For a tenant's own administration: `fleet:admin` reaches every tenant, `admin` its own only;
   * anything else is 403. Call after `requireScope('jobs:read')`-style authentication, or alone.
   */
  requireTenantAdmin(request: FastifyRequest, tenantId: string): Promise<ApiKeyPrincipal>;
  /**
   * For fleet-wide operations (Bull Board shows every tenant's jobs; backups dump every tenant's
   * data): resolves for a `fleet:admin` API key or HTTP Basic with the operator credentials, else
   * throws 401/403. A tenant's `admin` key is refused.
   */
  requireOperator(request: FastifyRequest): Promise<void>;
  /** The caller of a request that passed `requireScope`. */
  principal(request: FastifyRequest): ApiKeyPrincipal;
}

const REALM = 'jobfleet';
// Beyond this many distinct keys the cache starts over, so random keys cannot grow it without bound.
const CACHE_MAX_ENTRIES = 10_000;

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest();

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

  function lookup(key: string): Promise<ApiKeyPrincipal | null> {
    const id = sha256(key).toString('hex');
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

  async function authenticate(request: FastifyRequest): Promise<ApiKeyPrincipal> {
    const key = presentedApiKey(request);
    if (key === undefined) throw bearerChallenge('An API key is required (Authorization: Bearer <key> or X-Api-Key)');
    const principal = await lookup(key);
    if (principal === null) throw bearerChallenge('The API key is unknown or revoked', 'invalid_token');
    return principal;
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

    async requireOperator(request) {
      const basic = basicCredentials(request);
      const key = basic === undefined ? presentedApiKey(request) : undefined;
      if (basic !== undefined) {
        // Both compared, always, so the time taken does not tell which one was wrong.
        const userOk = secretEquals(basic.user, options.admin.user);
        const passwordOk = secretEquals(basic.password, options.admin.password);
        if (userOk && passwordOk) return;
      } else if (key !== undefined) {
        const principal = await lookup(key);
        if (principal?.scopes.includes('fleet:admin')) return;
        if (principal !== null) throw new HttpProblem(403, 'Fleet-wide operations need the "fleet:admin" scope; a tenant\'s "admin" key sees its own tenant only');
      }
      throw new HttpProblem(401, 'Operator credentials (HTTP Basic) or an API key with the "fleet:admin" scope are required', {
        headers: { 'www-authenticate': `Basic realm="${REALM}-admin", charset="UTF-8"` },
      });
    },

    principal(request) {
      const principal = principals.get(request);
      if (principal === undefined) throw new Error('principal() called on a route without requireScope');
      return principal;
    },
  };
}
