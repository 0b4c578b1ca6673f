import { limitOverridesSchema, resolveTenantLimits, type Config, type KindQuotas, type LimitOverrides, type TenantLimits } from '@jobfleet/config';
import { eq } from 'drizzle-orm';
import { LRUCache } from 'lru-cache';
import type { Db } from './client';
import { tenants } from './schema';

export interface TenantLimitSettings {
  /** The tier named on the tenant row; null: the configured default. */
  tier: string | null;
  overrides: LimitOverrides;
}

/** A tenant's limits as the admin API and the CLI show them: what is stored and what it comes to. */
interface TenantLimitsView extends TenantLimitSettings {
  tenantId: string;
  effective: { tier: string; requestsPerMinute: number; keyRequestsPerMinute: number; kinds: Record<string, KindQuotas> };
}

type TierSettings = Pick<Config['tenants'], 'tiers' | 'defaultTier'>;

/** The effective limits of a tenant row; no row (an unknown tenant): the default tier's. */
function effectiveLimits(settings: TierSettings, row: TenantLimitSettings | undefined): TenantLimits {
  return resolveTenantLimits(settings, row?.tier ?? settings.defaultTier, row?.overrides ?? {});
}

/**
 * A tenant's tier and overrides. The overrides column is validated when written; a row that no
 * longer parses (written by hand, or by a newer release) counts as no overrides rather than
 * failing every request of the tenant.
 */
export const tenantLimitsRepository = {
  async read(db: Db, tenantId: string): Promise<TenantLimitSettings | undefined> {
    const rows = await db.select({ tier: tenants.tier, overrides: tenants.limitOverrides }).from(tenants).where(eq(tenants.id, tenantId)).limit(1);
    const row = rows[0];
    if (row === undefined) return undefined;
    const overrides = limitOverridesSchema.safeParse(row.overrides);
    return { tier: row.tier, overrides: overrides.success ? overrides.data : {} };
  },

  /** Sets the tier (null: back to the default) and, when given, replaces the overrides. False: no such tenant. */
  async update(db: Db, tenantId: string, change: { tier?: string | null; overrides?: LimitOverrides }): Promise<boolean> {
    const set = {
      ...(change.tier === undefined ? {} : { tier: change.tier }),
      ...(change.overrides === undefined ? {} : { limitOverrides: limitOverridesSchema.parse(change.overrides) }),
    };
    if (Object.keys(set).length === 0) return (await this.read(db, tenantId)) !== undefined;
    const rows = await db.update(tenants).set(set).where(eq(tenants.id, tenantId)).returning({ id: tenants.id });
    return rows.length > 0;
  },

  /** The tenant's stored tier and overrides with its effective limits, quotas for each of `kinds`; undefined: no such tenant. */
  async describe(db: Db, settings: TierSettings, tenantId: string, kinds: readonly string[]): Promise<TenantLimitsView | undefined> {
    const row = await this.read(db, tenantId);
    if (row === undefined) return undefined;
    const limits = effectiveLimits(settings, row);
    return {
      tenantId,
      ...row,
      effective: {
        tier: limits.tier,
        requestsPerMinute: limits.requestsPerMinute,
        keyRequestsPerMinute: limits.keyRequestsPerMinute,
        kinds: Object.fromEntries(kinds.map((kind) => [kind, limits.quotas(kind)])),
      },
    };
  },
};

export interface TenantLimitsCache {
  /** The tenant's effective limits; an unknown tenant gets the default tier's. */
  limitsOf(tenantId: string): Promise<TenantLimits>;
}

/**
 * Effective limits per tenant, read from Postgres at most once per `config.tenants.limitsCacheMs`
 * per process, so a changed tier or override bites everywhere within that time. Bounded by `max`.
 */
export function createTenantLimitsCache(db: Db, settings: Config['tenants'], max = 10_000): TenantLimitsCache {
  const cache = new LRUCache<string, TenantLimits>({
    max,
    // A TTL of 0 would mean "forever" to lru-cache; 1 ms is as good as no cache.
    ttl: Math.max(1, settings.limitsCacheMs),
    fetchMethod: async (tenantId) => effectiveLimits(settings, await tenantLimitsRepository.read(db, tenantId)),
  });
  return {
    async limitsOf(tenantId) {
      const limits = await cache.fetch(tenantId);
      if (limits === undefined) throw new Error(`no limits for tenant ${tenantId}`);
      return limits;
    },
  };
}
