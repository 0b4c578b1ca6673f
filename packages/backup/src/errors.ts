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

/** The worker process passed BACKUP_MEMORY_LIMIT_MB during the run; retryable (another worker may have room). */
export class BackupMemoryLimitError extends JobfleetError {
  readonly code = 'BACKUP_MEMORY_LIMIT';
  readonly retryable = true;
  constructor(
    readonly residentBytes: number,
    readonly limitBytes: number,
    options: { cause?: unknown } = {},
  ) {
    super(`worker resident memory reached ${Math.round(residentBytes / 1048576)} MiB, over the ${Math.round(limitBytes / 1048576)} MiB limit`, {
      ...options,
      details: { residentBytes, limitBytes },
    });
  }
}

/**
 * Another attempt of the same run took the backup row over (this worker lost its job lock, or the
 * run was failed as stalled) while this one was still dumping. Its dump is discarded; the newer
 * attempt's result is the run's. Not retryable: the job already belongs to the other attempt.
 */
export class BackupSupersededError extends JobfleetError {
  readonly code = 'BACKUP_SUPERSEDED';
  readonly retryable = false;
  constructor(readonly backupId: string) {
    super(`backup ${backupId} was taken over by another attempt of the same run; this attempt's dump is discarded`, {
      details: { backupId },
    });
  }
}
