import type { ApiKeyPrincipal, TenantLimitsCache } from '@jobfleet/db';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RedisClient } from '@jobfleet/queue';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract, type RateLimiterRes } from 'rate-limiter-flexible';
import { callPostgres } from './dependencies';
import { HttpProblem } from './problem';

/**
 * The two limits of every authenticated tenant request, named as the RateLimit fields name them:
 * all of the tenant's keys together, and the one key.
 */
const POLICIES = ['tenant', 'key'] as const;
type Policy = (typeof POLICIES)[number];

interface Count {
  /** Requests the window allows. */
  limit: number;
  /** Requests counted in the window, this one included unless another limit refused it. */
  counted: number;
  msBeforeReset: number;
}

export interface RequestLimiter {
  /**
   * Counts an authenticated request against its tenant's and its key's limits, once per request
   * however often it is called; throws a 429 problem when either is used up.
   */
  admit(request: FastifyRequest, principal: ApiKeyPrincipal): Promise<void>;
}

export interface RateLimitDeps {
  /** The producer connection: it refuses at once while Redis is down. */
  redis: RedisClient;
  /** Redis key prefix of the fleet (QUEUE_PREFIX). */
  prefix: string;
  windowSeconds: number;
  limits: TenantLimitsCache;
}

// The limiters only count: each allows "everything" and the tenant's limits, read at every request,
// decide. So a changed tier or override bites as soon as the limits cache lets it through, and one
// limiter serves every tenant whatever its numbers.
const COUNT_ONLY = Number.MAX_SAFE_INTEGER;
// An outage would otherwise log one line per request.
const FALLBACK_WARNING_INTERVAL_MS = 60_000;

/** Whole seconds until `ms` from now, at least 1: a client told 0 would retry at once. */
const secondsUntil = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

const remaining = (count: Count) => Math.max(count.limit - count.counted, 0);

/**
 * Per-tenant and per-key request limits in fixed windows, counted in Redis so every API replica
 * shares them (rate-limiter-flexible's atomic increment script; a counter expires with its window,
 * so an idle tenant costs nothing), and the RateLimit-Policy and RateLimit fields
 * (draft-ietf-httpapi-ratelimit-headers) on every answer to a counted request.
 */
export function installRateLimits(app: FastifyInstance, { redis, prefix, windowSeconds, limits }: RateLimitDeps): RequestLimiter {
  const options = { keyPrefix: `${prefix}:rate-limit`, points: COUNT_ONLY, duration: windowSeconds };
  const shared = new RateLimiterRedis({ ...options, storeClient: redis });
  // Redis down: fail open, but not all the way. Each replica counts on its own until Redis is back,
  // so a tenant gets up to its limit per replica instead of none at all, and the requests that
  // still work (reads from Postgres) are neither refused with 429s nor left unbounded.
  const local = new RateLimiterMemory(options);
  const outcomes = new WeakMap<FastifyRequest, Record<Policy, Count>>();
  let lastFallbackWarning = 0;

  async function consume(request: FastifyRequest, key: string): Promise<{ store: RateLimiterAbstract; result: RateLimiterRes }> {
    try {
      return { store: shared, result: await shared.consume(key) };
    } catch (error) {
      if (Date.now() - lastFallbackWarning >= FALLBACK_WARNING_INTERVAL_MS) {
        lastFallbackWarning = Date.now();
        request.log.warn({ err: error }, 'rate limits unavailable in Redis: this replica counts requests on its own until Redis is back');
      }
      return { store: local, result: await local.consume(key) };
    }
  }

  app.addHook('onSend', async (request, reply) => {
    const outcome = outcomes.get(request);
    if (outcome === undefined) return;
    reply.header('ratelimit-policy', POLICIES.map((policy) => `"${policy}";q=${outcome[policy].limit};w=${windowSeconds}`).join(', '));
    reply.header(
      'ratelimit',
      POLICIES.map((policy) => `"${policy}";r=${remaining(outcome[policy])};t=${secondsUntil(outcome[policy].msBeforeReset)}`).join(', '),
    );
  });

  /** Gives back a point the request took; false when the store could not be reached. */
  function giveBack(request: FastifyRequest, store: RateLimiterAbstract, key: string): Promise<boolean> {
    return store.reward(key).then(
      () => true,
      (error: unknown) => {
        request.log.debug({ err: error }, 'could not give back the point of a refused request');
        return false;
      },
    );
  }

  return {
    async admit(request, principal) {
      if (outcomes.has(request)) return;
      const keys: Record<Policy, string> = { tenant: `tenant:${principal.tenantId}`, key: `key:${principal.keyId}` };
      // Both counters at once: two commands written back to back on one connection, so admitting a
      // request costs one Redis round trip (the limits come from the process's cache).
      const [tenantLimits, tenant, key] = await Promise.all([
        callPostgres(() => limits.limitsOf(principal.tenantId)),
        consume(request, keys.tenant),
        consume(request, keys.key),
      ]);
      const consumed = { tenant, key };
      const limitOf: Record<Policy, number> = { tenant: tenantLimits.requestsPerMinute, key: tenantLimits.keyRequestsPerMinute };
      const refusedBy = POLICIES.filter((policy) => consumed[policy].result.consumedPoints > limitOf[policy]);

      const count = async (policy: Policy): Promise<Count> => {
        const { store, result } = consumed[policy];
        // A refused request counts only against the limit that refused it: a key hammering past its
        // own limit must not use up its sibling keys' share of the tenant's, nor the tenant's refusals
        // a key's. This second round trip is paid by refused requests only.
        const givenBack = refusedBy.length > 0 && !refusedBy.includes(policy) && (await giveBack(request, store, keys[policy]));
        return { limit: limitOf[policy], counted: result.consumedPoints - (givenBack ? 1 : 0), msBeforeReset: result.msBeforeNext };
      };
      const outcome = { tenant: await count('tenant'), key: await count('key') };
      outcomes.set(request, outcome);
      if (refusedBy.length === 0) return;

      // Retry-After must not come before the reset of a limit that refused.
      const retryAfter = Math.max(...refusedBy.map((policy) => secondsUntil(outcome[policy].msBeforeReset)));
      const what: Record<Policy, string> = {
        tenant: `the tenant limit (tenant "${principal.tenantId}" may send ${limitOf.tenant} requests per ${windowSeconds} s with all its keys together)`,
        key: `the key limit (this API key may send ${limitOf.key} requests per ${windowSeconds} s)`,
      };
      throw new HttpProblem(429, `Rate limit exceeded: ${refusedBy.map((policy) => what[policy]).join(' and ')}; retry after ${retryAfter} s`, {
        type: '/problems/rate-limited',
        headers: { 'retry-after': String(retryAfter) },
      });
    },
  };
}
