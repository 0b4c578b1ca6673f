import { JobfleetError } from '@jobfleet/contracts';

/**
 * pg_dump was stopped because the run hit its `timeoutMs` (`reason: 'timeout'`) or the caller's
 * signal aborted (`reason: 'aborted'`); retryable, the next attempt starts from scratch.
 */
export class BackupTimeoutError extends JobfleetError {
  readonly code = 'BACKUP_TIMEOUT';
  readonly retryable = true;
  constructor(
    readonly reason: 'timeout' | 'aborted',
    readonly elapsedMs: number,
  ) {
    super(`pg_dump ${reason === 'timeout' ? 'timed out' : 'was aborted'} after ${elapsedMs} ms`, {
      details: { reason, elapsedMs },
    });
  }
}
