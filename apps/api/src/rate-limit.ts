import type { ApiKeyPrincipal, TenantLimitsCache } from '@jobfleet/db';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RedisClient } from '@jobfleet/queue';
import { requestLimitFactor, type DegradationView } from '@jobfleet/resilience';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { callPostgres } from './dependencies';
import { HttpProblem } from './problem';
import { createRedisWindowCounter, type WindowCount } from './window-counter';

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
  /** From LIMITED up, every limit is multiplied by `factor` (DEGRADATION_RATE_LIMIT_FACTOR). */
  degradation: { view: DegradationView; factor: number };
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
 * shares them (window-counter.ts: one MULTI for the requests of the moment; a counter expires with
 * its window, so an idle tenant costs nothing), and the RateLimit-Policy and RateLimit fields
 * (draft-ietf-httpapi-ratelimit-headers) on every answer to a counted request.
 */
export function installRateLimits(app: FastifyInstance, { redis, prefix, windowSeconds, limits, degradation }: RateLimitDeps): RequestLimiter {
  const keyPrefix = `${prefix}:rate-limit`;
  const shared = createRedisWindowCounter(redis, { keyPrefix, windowSeconds });
  // Redis down: fail open, but not all the way. Each replica counts on its own until Redis is back,
  // so a tenant gets up to its limit per replica instead of none at all, and the requests that
  // still work (reads from Postgres) are neither refused with 429s nor left unbounded.
  const local = new RateLimiterMemory({ keyPrefix, points: COUNT_ONLY, duration: windowSeconds });
  const outcomes = new WeakMap<FastifyRequest, Record<Policy, Count>>();
  let lastFallbackWarning = 0;

  /** A request's count against one limit, and how to give it back. */
  interface Consumed extends WindowCount {
    giveBack(): Promise<void>;
  }

  async function consume(request: FastifyRequest, key: string): Promise<Consumed> {
    try {
      return { ...(await shared.add(key)), giveBack: () => shared.take(key) };
    } catch (error) {
      if (Date.now() - lastFallbackWarning >= FALLBACK_WARNING_INTERVAL_MS) {
        lastFallbackWarning = Date.now();
        request.log.warn({ err: error }, 'rate limits unavailable in Redis: this replica counts requests on its own until Redis is back');
      }
      const result = await local.consume(key);
      return { consumed: result.consumedPoints, msBeforeReset: result.msBeforeNext, giveBack: () => local.reward(key).then(() => undefined) };
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
  function giveBack(request: FastifyRequest, consumed: Consumed): Promise<boolean> {
    return consumed.giveBack().then(
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
      // Both counters at once, in the MULTI of the requests of the moment (the limits come from the
      // process's cache).
      const [tenantLimits, tenant, key] = await Promise.all([
        callPostgres(() => limits.limitsOf(principal.tenantId)),
        consume(request, keys.tenant),
        consume(request, keys.key),
      ]);
      const consumed = { tenant, key };
      const factor = requestLimitFactor(degradation.view.current().level, degradation.factor);
      const tightened = (limit: number) => Math.max(1, Math.floor(limit * factor));
      const limitOf: Record<Policy, number> = { tenant: tightened(tenantLimits.requestsPerMinute), key: tightened(tenantLimits.keyRequestsPerMinute) };
      const refusedBy = POLICIES.filter((policy) => consumed[policy].consumed > limitOf[policy]);

      const count = async (policy: Policy): Promise<Count> => {
        const counted = consumed[policy];
        // A refused request counts only against the limit that refused it: a key hammering past its
        // own limit must not use up its sibling keys' share of the tenant's, nor the tenant's refusals
        // a key's. This second round trip is paid by refused requests only.
        const givenBack = refusedBy.length > 0 && !refusedBy.includes(policy) && (await giveBack(request, counted));
        return { limit: limitOf[policy], counted: counted.consumed - (givenBack ? 1 : 0), msBeforeReset: counted.msBeforeReset };
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
