import type { BackupDefinition } from '@jobfleet/config';
import { coerceError, JobfleetError, PermanentError, toStoredError, type BackupResult } from '@jobfleet/contracts';
import { backupRepository, type Database } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
import { checkRestore, type RestoreCheckMode } from './restore-check';
import { countRestoreCheck } from './run-backup';
import type { BackupTarget } from './target';

export interface VerifyBackupDeps {
  database: Database;
  target: BackupTarget;
  timeoutMs: number;
  scratchServerUrl: string | undefined;
  signal: AbortSignal;
  logger: Logger;
  metrics: Pick<Metrics, 'backupRestoreChecks'>;
}

/**
 * Checks the definition's newest successful backup again, as stored today (a file can rot or be
 * tampered with after its run passed), and stores the result on that backup's row. A failed check
 * is stored as `{ passed: false, error }` before the error is thrown.
 */
export async function verifyLatestBackup(
  input: { definition: BackupDefinition; mode: RestoreCheckMode },
  deps: VerifyBackupDeps,
): Promise<BackupResult> {
  const { db } = deps.database;
  const { definition, mode } = input;
  const row = await backupRepository.latestSucceeded(db, definition.name);
  if (row?.location == null || row.sha256 === null) {
    throw new PermanentError('BACKUP_NOTHING_TO_VERIFY', `backup definition "${definition.name}" has no successful backup to verify`);
  }
  const logger = deps.logger.child({ backupId: row.id, definition: definition.name, location: row.location });
  try {
    const checked = checkRestore({
      target: deps.target,
      location: row.location,
      format: definition.format,
      expectedSha256: row.sha256,
      mode,
      scratchServerUrl: deps.scratchServerUrl,
      timeoutMs: deps.timeoutMs,
      signal: deps.signal,
    });
    const restoreCheck = await countRestoreCheck(deps.metrics, definition.name, checked);
    await backupRepository.recordRestoreCheck(db, row.id, { ...restoreCheck });
    logger.info({ restoreCheck }, 'backup verified');
    return { backupId: row.id, outcome: 'verified', location: row.location, bytes: row.bytes, sha256: row.sha256 };
  } catch (thrown) {
    const error = coerceError(thrown);
    logger.error({ err: error }, 'backup verification failed');
    // Only a verdict on the backup itself is stored; an unreachable target or server says nothing about it.
    if (error instanceof JobfleetError && !error.retryable) {
      await backupRepository
        .recordRestoreCheck(db, row.id, { mode, passed: false, error: toStoredError(error), checkedAt: new Date().toISOString() })
        .catch((writeError: unknown) => logger.error({ err: writeError }, 'could not record the failed verification'));
    }
    throw error;
  }
}
