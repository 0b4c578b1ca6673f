import { DependencyWaitError, JobfleetError, RateLimitedError, WaitError } from '@jobfleet/contracts';
import { UnrecoverableError } from 'bullmq';

/**
 * What happens to a job after one of its attempts threw:
 * - `wait`: back to delayed for about `delayMs`, **no attempt spent** (the reason is outside the job);
 * - `retry`: an attempt is spent, BullMQ's backoff decides when the next one runs;
 * - `fail`: for good (permanent error, or no attempt left).
 * The job's status row is written from this same decision, so it always matches what BullMQ does.
 */
export type AttemptDecision =
  | { action: 'wait'; delayMs: number; reason: string }
  | { action: 'retry' }
  // permanent: the error itself can never pass (else the attempts ran out).
  | { action: 'fail'; permanent: boolean };

export interface AttemptFacts {
  /** Attempts already spent before this one. */
  attemptsMade: number;
  /** The job's `attempts` option. */
  maxAttempts: number;
  /** When the job was created (ms since epoch): the wait budget counts from here. */
  createdAt: number;
  now: number;
}

export interface AttemptPolicySettings {
  /** How long a job may wait without spending attempts; past it, waits cost attempts like retries. */
  maxWaitMs: number;
  /**
   * Errors that can never pass by retrying although they are not typed as permanent, e.g. a
   * deterministic SQL error (see classifyPostgresError). Default: none.
   */
  isPermanent?: (error: Error) => boolean;
}

// A half-open breaker refuses all but its trial call: come back soon, but not at once.
const MIN_DEPENDENCY_WAIT_MS = 1000;
// A rate limit without a Retry-After hint: long enough for a per-second quota to refill.
const DEFAULT_RATE_LIMIT_WAIT_MS = 5000;

function isUnrecoverable(error: Error): boolean {
  return error instanceof UnrecoverableError || error.name === 'UnrecoverableError';
}

/** The one place that decides wait vs retry vs fail; every branch is tested. */
export function decideAfterError(error: Error, facts: AttemptFacts, settings: AttemptPolicySettings): AttemptDecision {
  const permanent = isUnrecoverable(error) || (error instanceof JobfleetError && !error.retryable) || (settings.isPermanent?.(error) ?? false);
  if (permanent) return { action: 'fail', permanent: true };
  const withinBudget = facts.now - facts.createdAt < settings.maxWaitMs;
  if (withinBudget && error instanceof WaitError) {
    const floor = error instanceof DependencyWaitError ? MIN_DEPENDENCY_WAIT_MS : 0;
    return { action: 'wait', delayMs: Math.max(error.retryAfterMs, floor), reason: error.waitReason };
  }
  // The dependency's Retry-After is the minimum delay; it tells about our pace, not about the job.
  if (withinBudget && error instanceof RateLimitedError) {
    return { action: 'wait', delayMs: error.retryAfterMs ?? DEFAULT_RATE_LIMIT_WAIT_MS, reason: `${error.dependency} rate limited` };
  }
  return retryOrFail(facts);
}

/** A transient failure: retried while attempts are left. */
export function retryOrFail(facts: Pick<AttemptFacts, 'attemptsMade' | 'maxAttempts'>): AttemptDecision {
  return facts.attemptsMade + 1 >= Math.max(facts.maxAttempts, 1) ? { action: 'fail', permanent: false } : { action: 'retry' };
}
