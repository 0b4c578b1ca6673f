import { z } from 'zod';
import type { TenantTiers } from './tenant-limits';

/**
 * The fleet-wide degradation level's thresholds (see the README, "Degradation levels"). A level's
 * condition is raised when its signal reaches the threshold and cleared only once the signal is
 * below threshold × clearRatio; a lower level is taken only after the conditions above it stayed
 * cleared for holdMs. So a signal hovering at a threshold does not flap the level, and recovery
 * after the signal clears takes at most holdMs + intervalMs.
 */
export interface DegradationConfig {
  /** How often the evaluator computes the level, and every process reads it. */
  intervalMs: number;
  holdMs: number;
  clearRatio: number;
  /** LIMITED: the oldest waiting job of any queue is older than this. */
  oldestJobAgeMs: number;
  /** Redis used_memory / maxmemory of the fullest instance, per level. */
  redisMemoryRatio: { limited: number; minimal: number; emergency: number };
  /** The memory the ratio is taken of when an instance sets no maxmemory; undefined: no memory signal then. */
  redisMemoryBytes: number | undefined;
  /** EMERGENCY: fewer live worker processes than this share of the most seen within workersWindowMs. */
  workersGoneRatio: number;
  workersWindowMs: number;
  /** LIMITED and worse: the tenant and key request limits are multiplied by this. */
  rateLimitFactor: number;
  /** The tiers whose single jobs are still accepted at MINIMAL. */
  priorityTiers: readonly string[];
  /** Retry-After of a request refused for the level. */
  retryAfterSeconds: number;
}

const ratio = z.coerce.number().gt(0).max(1);
const int = (min: number) => z.coerce.number().int().min(min);

export const degradationEnvShape = {
  // How often the level is evaluated (by one process of the fleet) and read (by every process).
  DEGRADATION_INTERVAL_SECONDS: int(1).max(60).default(5),
  // How long a lower level's conditions must hold before the level steps down.
  DEGRADATION_HOLD_SECONDS: int(0).max(110).default(30),
  // A raised condition clears below threshold × this (the hysteresis band).
  DEGRADATION_CLEAR_RATIO: ratio.default(0.9),
  // LIMITED: age of the oldest waiting job of any queue.
  DEGRADATION_OLDEST_JOB_AGE_SECONDS: int(1).default(600),
  // Redis used_memory / maxmemory that raises LIMITED, MINIMAL and EMERGENCY.
  DEGRADATION_REDIS_MEMORY_LIMITED: ratio.default(0.7),
  DEGRADATION_REDIS_MEMORY_MINIMAL: ratio.default(0.85),
  DEGRADATION_REDIS_MEMORY_EMERGENCY: ratio.default(0.95),
  // The memory ratios' denominator for a Redis without maxmemory; unset: no memory signal there.
  DEGRADATION_REDIS_MEMORY_BYTES: int(1).optional(),
  // EMERGENCY: fewer live worker processes than this share of the most seen in the window.
  DEGRADATION_WORKERS_GONE_RATIO: ratio.default(0.5),
  DEGRADATION_WORKERS_WINDOW_SECONDS: int(10).default(600),
  // LIMITED and worse multiply every tenant's request limits by this.
  DEGRADATION_RATE_LIMIT_FACTOR: ratio.default(0.5),
  // Comma-separated tiers still served at MINIMAL; unset: the tier(s) with the most requestsPerMinute.
  DEGRADATION_PRIORITY_TIERS: z.string().optional(),
  // Retry-After of a request refused for the level.
  DEGRADATION_RETRY_AFTER_SECONDS: int(1).default(30),
};

type DegradationEnv = z.infer<z.ZodObject<typeof degradationEnvShape>>;

export function parseDegradationConfig(env: DegradationEnv, tiers: TenantTiers, issues: string[]): DegradationConfig {
  const { DEGRADATION_REDIS_MEMORY_LIMITED: limited, DEGRADATION_REDIS_MEMORY_MINIMAL: minimal, DEGRADATION_REDIS_MEMORY_EMERGENCY: emergency } = env;
  if (!(limited < minimal && minimal < emergency)) {
    issues.push('DEGRADATION_REDIS_MEMORY_*: LIMITED < MINIMAL < EMERGENCY is required');
  }
  return {
    intervalMs: env.DEGRADATION_INTERVAL_SECONDS * 1000,
    holdMs: env.DEGRADATION_HOLD_SECONDS * 1000,
    clearRatio: env.DEGRADATION_CLEAR_RATIO,
    oldestJobAgeMs: env.DEGRADATION_OLDEST_JOB_AGE_SECONDS * 1000,
    redisMemoryRatio: { limited, minimal, emergency },
    redisMemoryBytes: env.DEGRADATION_REDIS_MEMORY_BYTES,
    workersGoneRatio: env.DEGRADATION_WORKERS_GONE_RATIO,
    workersWindowMs: env.DEGRADATION_WORKERS_WINDOW_SECONDS * 1000,
    rateLimitFactor: env.DEGRADATION_RATE_LIMIT_FACTOR,
    priorityTiers: priorityTiers(env.DEGRADATION_PRIORITY_TIERS, tiers, issues),
    retryAfterSeconds: env.DEGRADATION_RETRY_AFTER_SECONDS,
  };
}

function priorityTiers(raw: string | undefined, tiers: TenantTiers, issues: string[]): string[] {
  const names = (raw ?? '').split(',').map((name) => name.trim()).filter(Boolean);
  if (names.length === 0) {
    const top = Math.max(...Object.values(tiers).map((tier) => tier.requestsPerMinute));
    return Object.keys(tiers).filter((name) => tiers[name]?.requestsPerMinute === top);
  }
  const unknown = names.filter((name) => tiers[name] === undefined);
  if (unknown.length > 0) issues.push(`DEGRADATION_PRIORITY_TIERS: not a tier: ${unknown.join(', ')} (known: ${Object.keys(tiers).join(', ')})`);
  return names;
}
