import { JobfleetError, WaitError } from '@jobfleet/contracts';

// A busy lock's job comes back soon (jittered by the deferral), so waiting jobs spread out.
const LOCK_BUSY_RETRY_MS = 500;

/** The lock was held by another owner for the whole wait: the job waits its turn, no attempt spent. */
export class LockUnavailableError extends WaitError {
  readonly code = 'LOCK_UNAVAILABLE';
  readonly waitReason: string;
  constructor(
    readonly key: string,
    readonly waitedMs: number,
  ) {
    super(LOCK_BUSY_RETRY_MS, `lock ${key} is held by another owner (waited ${waitedMs} ms)`, { details: { key, waitedMs } });
    this.waitReason = `lock ${key} busy`;
  }
}

/** The reason of a lost lock's aborted `signal`: the holder must stop writing under it. */
export class LockLostError extends JobfleetError {
  readonly code = 'LOCK_LOST';
  readonly retryable = true;
  constructor(
    readonly key: string,
    readonly reason: LockLossReason,
  ) {
    super(`lock ${key} was lost (${reason})`, { details: { key, reason } });
  }
}

/**
 * - `gone`: the key had expired when we tried to extend it;
 * - `taken`: another owner holds it;
 * - `deadline`: its ttl passed without a successful extension (Redis slow or unreachable).
 */
export type LockLossReason = 'gone' | 'taken' | 'deadline';
