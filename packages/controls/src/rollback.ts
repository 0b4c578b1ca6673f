import { featureFlagRepository, type Db, type FleetActor } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
import type { RedisClient } from '@jobfleet/queue';
import type { EvaluationDetails, FlagValue, Hook, HookContext } from '@openfeature/server-sdk';
import { LRUCache } from 'lru-cache';
import type { FleetControls } from './live';
import { FLAG_VERSION_METADATA } from './provider';

export interface FlagRollbackSettings {
  /** A variant failing more than this share of attempts in the window rolls its flag back (0.2). */
  failureRatio: number;
  windowMs: number;
  /** Fewer attempts than this in the window decide nothing. */
  minSample: number;
}

export interface FlagRollbackMonitorOptions {
  db: Db;
  /** Where the fleet-wide outcome counters live (the main Redis). */
  redis: RedisClient;
  prefix: string;
  controls: FleetControls;
  settings: FlagRollbackSettings;
  metrics: Metrics;
  logger: Logger;
}

/** The evaluation context attribute that ties a flag evaluation to the job attempt that made it. */
export const JOB_KEY_ATTRIBUTE = 'jobKey';

export const jobKeyOf = (queue: string, jobId: string | undefined) => `${queue}:${jobId ?? ''}`;

export interface FlagRollbackMonitor {
  /** An OpenFeature hook that notes which rollout variants each job attempt was served. */
  readonly hook: Hook;
  /**
   * Counts the attempt's outcome for every rollout variant it was served and, on a failure, rolls
   * back a flag whose variant is past the threshold. Throws on Redis or Postgres trouble.
   */
  recordOutcome(jobKey: string, outcome: 'completed' | 'failed'): Promise<void>;
}

const ROLLBACK_ACTOR: FleetActor = { actor: 'system:flag-rollback', actorTenantId: null };

// The window is counted in this many buckets: a failure burst leaves it within a fifth of the window.
const BUCKETS_PER_WINDOW = 5;
// Attempts whose outcome never came (a crashed worker's) must not grow the map without bound.
const MAX_TRACKED_ATTEMPTS = 10_000;

interface Served {
  variant: string;
  version: number;
}

/**
 * The automatic rollback: per flag version and rollout variant, completed and failed attempts are
 * counted fleet-wide in Redis (buckets of a fifth of the window, expiring by themselves); a variant
 * failing more than `failureRatio` of at least `minSample` attempts within the window turns its
 * flag off (the kill variant for everyone), audited as `system:flag-rollback` with the figures,
 * announced to the fleet and counted in `feature_flag_rollbacks_total`. Only rollout variants are
 * watched: the kill and default variants are what the fleet falls back to.
 */
export function createFlagRollbackMonitor(options: FlagRollbackMonitorOptions): FlagRollbackMonitor {
  const { db, redis, prefix, controls, settings, metrics, logger } = options;
  const bucketMs = Math.ceil(settings.windowMs / BUCKETS_PER_WINDOW);
  const served = new LRUCache<string, Map<string, Served>>({ max: MAX_TRACKED_ATTEMPTS });
  const counterKey = (flag: string, { version, variant }: Served, bucket: number) =>
    // Under the prefix's hash tag (required on Redis Cluster): one slot, so one pipeline reads them all.
    `${prefix}:flag-outcomes:${flag}:${version}:${variant}:${bucket}`;

  // Every flag's series exists from 0, so the first rollback is an increase Prometheus can see.
  controls.onChange((snapshot) => {
    for (const flag of snapshot.flags.keys()) metrics.featureFlagRollbacks.inc({ flag }, 0);
  });

  const hook: Hook = {
    after(hookContext: Readonly<HookContext>, details: EvaluationDetails<FlagValue>) {
      const jobKey = hookContext.context[JOB_KEY_ATTRIBUTE];
      const version = details.flagMetadata[FLAG_VERSION_METADATA];
      const rollout = details.reason === 'TARGETING_MATCH' || details.reason === 'SPLIT';
      if (typeof jobKey !== 'string' || typeof version !== 'number' || details.variant === undefined || !rollout) return;
      const flags = served.get(jobKey) ?? new Map<string, Served>();
      flags.set(details.flagKey, { variant: details.variant, version });
      served.set(jobKey, flags);
    },
  };

  async function rollBack(flag: string, entry: Served, failed: number, total: number): Promise<void> {
    const ratio = failed / total;
    const reason = `variant "${entry.variant}" failed ${failed} of ${total} job attempts (${(ratio * 100).toFixed(1)}%, over ${settings.failureRatio * 100}%) within ${settings.windowMs / 1000} s`;
    const detail = { variant: entry.variant, version: entry.version, failed, sample: total, ratio, threshold: settings.failureRatio, windowMs: settings.windowMs, minSample: settings.minSample };
    if (!(await featureFlagRepository.rollback(db, flag, reason, detail, ROLLBACK_ACTOR))) return;
    metrics.featureFlagRollbacks.inc({ flag });
    logger.error({ flag, ...detail }, `feature flag ${flag} rolled back: ${reason}`);
    await controls.announce();
  }

  return {
    hook,
    async recordOutcome(jobKey, outcome) {
      const flags = served.get(jobKey);
      if (flags === undefined) return;
      served.delete(jobKey);
      const bucket = Math.floor(Date.now() / bucketMs);
      for (const [flag, entry] of flags) {
        const pipeline = redis.pipeline().hincrby(counterKey(flag, entry, bucket), outcome, 1).pexpire(counterKey(flag, entry, bucket), settings.windowMs + bucketMs);
        const current = controls.current().flags.get(flag);
        // A flag already off, or changed since (a new version counts afresh), is not judged on this attempt.
        const judge = outcome === 'failed' && current?.enabled === true && current.updatedAt.getTime() === entry.version;
        if (judge) for (let back = 0; back < BUCKETS_PER_WINDOW; back++) pipeline.hmget(counterKey(flag, entry, bucket - back), 'completed', 'failed');
        const replies = (await pipeline.exec()) ?? [];
        if (!judge) continue;
        let completed = 0;
        let failed = 0;
        for (const [error, counts] of replies.slice(2)) {
          if (error) throw error;
          const [done, broken] = counts as [string | null, string | null];
          completed += Number(done ?? 0);
          failed += Number(broken ?? 0);
        }
        const total = completed + failed;
        if (total >= settings.minSample && failed / total > settings.failureRatio) await rollBack(flag, entry, failed, total);
      }
    },
  };
}
