import { JobfleetError } from '@jobfleet/contracts';

/** The lock was held by another owner for the whole wait; retryable (the holder will finish). */
export class LockUnavailableError extends JobfleetError {
  readonly code = 'LOCK_UNAVAILABLE';
  readonly retryable = true;
  constructor(
    readonly key: string,
    readonly waitedMs: number,
  ) {
    super(`lock ${key} is held by another owner (waited ${waitedMs} ms)`, { details: { key, waitedMs } });
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
