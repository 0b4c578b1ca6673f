import { z } from 'zod';

/**
 * What one tenant may use: request rates at the edge and, per job kind, quotas and fleet-wide
 * concurrency. A tier names a full set; a tenant row may override any field (tenants.limit_overrides).
 */

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Quotas of one job kind. */
const kindQuotaFields = {
  // Jobs accepted per UTC day.
  jobsPerDay: count,
  // Jobs accepted and not yet started (waiting, delayed, prioritized): backpressure.
  maxWaitingJobs: count,
  // Jobs running at once across the whole fleet.
  maxRunningJobs: count.min(1),
};

const requestFields = {
  // Requests per minute of all the tenant's keys together.
  requestsPerMinute: count.min(1),
  // Requests per minute of any one key.
  keyRequestsPerMinute: count.min(1),
};

const kindQuotasSchema = z.strictObject(kindQuotaFields);
export type KindQuotas = z.infer<typeof kindQuotasSchema>;

/** A tier: every field set; `kinds` tightens or loosens single job kinds. */
const tierSchema = z.strictObject({
  ...requestFields,
  ...kindQuotaFields,
  kinds: z.record(z.string().min(1).max(64), kindQuotasSchema.partial()).optional(),
});
export type TenantTier = z.infer<typeof tierSchema>;

/** A tenant's overrides: any subset of a tier. */
export const limitOverridesSchema = z.strictObject({
  ...z.strictObject(requestFields).partial().shape,
  ...kindQuotasSchema.partial().shape,
  kinds: z.record(z.string().min(1).max(64), kindQuotasSchema.partial()).optional(),
});
export type LimitOverrides = z.infer<typeof limitOverridesSchema>;

export const TIER_NAME = /^[a-z][a-z0-9-]{0,31}$/;
export const tiersSchema = z.record(z.string().regex(TIER_NAME), tierSchema);
export type TenantTiers = Readonly<Record<string, TenantTier>>;

/**
 * The built-in tiers (TENANT_TIERS replaces them). `standard` is where a new tenant starts: generous
 * for one integration, far from what the fleet can do, so one tenant alone cannot fill it.
 */
export const DEFAULT_TENANT_TIERS: TenantTiers = {
  free: { requestsPerMinute: 120, keyRequestsPerMinute: 120, jobsPerDay: 1_000, maxWaitingJobs: 100, maxRunningJobs: 2 },
  standard: { requestsPerMinute: 3_000, keyRequestsPerMinute: 3_000, jobsPerDay: 100_000, maxWaitingJobs: 10_000, maxRunningJobs: 10 },
  enterprise: { requestsPerMinute: 30_000, keyRequestsPerMinute: 30_000, jobsPerDay: 5_000_000, maxWaitingJobs: 200_000, maxRunningJobs: 50 },
};

export interface TenantLimits {
  tier: string;
  requestsPerMinute: number;
  keyRequestsPerMinute: number;
  /** The quotas of one job kind: the tier's, its per-kind entry, then the tenant's overrides. */
  quotas(kind: string): KindQuotas;
}

/** A tenant's effective limits; an unknown tier name (a tier removed from config) falls back to `defaultTier`. */
export function resolveTenantLimits(
  settings: { tiers: TenantTiers; defaultTier: string },
  tier: string,
  overrides: LimitOverrides,
): TenantLimits {
  const tierName = settings.tiers[tier] === undefined ? settings.defaultTier : tier;
  const base = settings.tiers[tierName];
  if (base === undefined) throw new Error(`tenant tier "${tierName}" is not defined`);
  const pick = (from: Partial<KindQuotas> | undefined): Partial<KindQuotas> => ({
    ...(from?.jobsPerDay === undefined ? {} : { jobsPerDay: from.jobsPerDay }),
    ...(from?.maxWaitingJobs === undefined ? {} : { maxWaitingJobs: from.maxWaitingJobs }),
    ...(from?.maxRunningJobs === undefined ? {} : { maxRunningJobs: from.maxRunningJobs }),
  });
  return {
    tier: tierName,
    requestsPerMinute: overrides.requestsPerMinute ?? base.requestsPerMinute,
    keyRequestsPerMinute: overrides.keyRequestsPerMinute ?? base.keyRequestsPerMinute,
    quotas: (kind) => ({
      jobsPerDay: base.jobsPerDay,
      maxWaitingJobs: base.maxWaitingJobs,
      maxRunningJobs: base.maxRunningJobs,
      ...pick(base.kinds?.[kind]),
      ...pick(overrides),
      ...pick(overrides.kinds?.[kind]),
    }),
  };
}

/**
 * A change of a tenant's limits as the admin API and the CLI accept it: a configured tier (null:
 * back to the default), overrides replacing the stored ones whose `kinds` name only `kinds`, or both.
 */
export function tenantLimitChangeSchema(tiers: TenantTiers, kinds: readonly string[]) {
  const tierNames = Object.keys(tiers);
  const known = new Set(kinds);
  const overrides = limitOverridesSchema.superRefine((value, ctx) => {
    for (const kind of Object.keys(value.kinds ?? {})) {
      if (!known.has(kind)) ctx.addIssue({ code: 'custom', path: ['kinds', kind], message: `not a job kind (known: ${kinds.join(', ')})` });
    }
  });
  return z
    .strictObject({
      tier: z
        .string()
        .refine((name) => Object.hasOwn(tiers, name), `not a configured tier (known: ${tierNames.join(', ')})`)
        .nullable()
        .optional(),
      overrides: overrides.optional(),
    })
    .refine((change) => change.tier !== undefined || change.overrides !== undefined, 'send a tier, overrides, or both');
}
