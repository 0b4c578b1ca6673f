import type { BackupDefinition, RestoreCheckMode } from '@jobfleet/config';
import { coerceError, JobfleetError, toStoredError, type BackupResult } from '@jobfleet/contracts';
import { backupRepository, type Database } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
import { BackupMemoryLimitError, BackupSupersededError } from './errors';
import { runPgDump } from './pg-dump';
import { checkRestore, type RestoreCheckResult } from './restore-check';
import { applyRetention } from './retention';
import type { BackupTarget } from './target';

export interface BackupRunInput {
  definition: BackupDefinition;
  /** The cron slot of a scheduled run; null on demand. */
  slot: Date | null;
  jobId: string;
  /** Who asked for an on-demand run. */
  tenantId?: string;
  restoreCheck: RestoreCheckMode;
}

export interface BackupRunDeps {
  database: Database;
  target: BackupTarget;
  /** Deadline of the dump; the restore check gets as long again. */
  timeoutMs: number;
  /** For full restore checks. */
  scratchServerUrl: string | undefined;
  /** Resident memory above which the run is stopped (the streaming dump should stay far below). */
  memoryLimitBytes: number;
  signal: AbortSignal;
  logger: Logger;
  metrics: Pick<Metrics, 'backupRestoreChecks'>;
}

export interface BackupRunOutcome extends BackupResult {
  /** Backups retention deleted after this run (their rows are now `pruned`). */
  pruned: string[];
}

const MEMORY_SAMPLE_MS = 500;

const RUN_TAG_LENGTH = 8;

/**
 * `<definition>.<slot or start, compact UTC>.<run token prefix>`: sortable, owned by one definition,
 * and unique per attempt, so two attempts of one run never write the same file and a file left by
 * a killed attempt can be told apart from the live ones.
 */
function fileStem(definition: string, when: Date, runToken: string): string {
  const stamp = when.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `${definition}.${stamp}.${runToken.slice(0, RUN_TAG_LENGTH)}`;
}

/** The run tag of a file name made by `fileStem` (definition names contain no dots). */
const runTagOf = (fileName: string): string | undefined => fileName.split('.')[2];

/** The file-name prefix that holds exactly one definition's backups (names contain no dots). */
export const retentionPrefix = (definition: string): string => `${definition}.`;

/**
 * One backup run, recorded in `backups`: dump to the target, check it, then apply the definition's
 * retention. A slot that already ran (or is running elsewhere) is skipped. A failed check removes
 * the dump, so a bad file never counts as a kept backup.
 */
export async function runBackup(input: BackupRunInput, deps: BackupRunDeps): Promise<BackupRunOutcome> {
  const { db } = deps.database;
  const { definition } = input;
  const { row, created } = await backupRepository.start(db, {
    schedule: definition.name,
    slot: input.slot,
    target: deps.target.description,
    jobId: input.jobId,
    ...(input.tenantId === undefined ? {} : { tenantId: input.tenantId }),
  });
  const logger = deps.logger.child({ backupId: row.id, definition: definition.name, slot: input.slot?.toISOString() ?? null });
  if (!created) {
    logger.info({ status: row.status, byJob: row.jobId }, 'backup slot already taken; skipped');
    return { backupId: row.id, outcome: 'skipped', location: row.location, bytes: row.bytes, sha256: row.sha256, pruned: [] };
  }

  const runToken = row.runToken ?? row.id;
  await sweepAbandoned(definition.name, runToken, deps, logger);

  const guard = watchMemory(deps.memoryLimitBytes);
  const signal = AbortSignal.any([deps.signal, guard.signal]);
  let location: string | undefined;
  let restoreCheck: RestoreCheckResult | undefined;
  try {
    if (row.location !== null) {
      // An earlier attempt of this run published its dump and died before recording its success.
      await deps.target.remove(row.location);
      logger.warn({ location: row.location }, 'removed the dump an earlier attempt of this run published without recording it');
    }
    const dump = await runPgDump({
      databaseUrl: definition.databaseUrl,
      format: definition.format,
      target: deps.target,
      name: fileStem(definition.name, input.slot ?? row.startedAt, runToken),
      timeoutMs: deps.timeoutMs,
      signal,
      // Fenced: a superseded attempt publishes nothing the fenced `succeed` below would refuse anyway.
      beforeCommit: async (publishing) => {
        if (!(await backupRepository.recordPublishing(db, row, publishing))) throw new BackupSupersededError(row.id);
      },
    });
    location = dump.location;
    logger.info({ location, bytes: dump.bytes, sha256: dump.sha256, durationMs: dump.durationMs }, 'backup written');
    if (input.restoreCheck !== 'none') {
      const checked = checkRestore({
        target: deps.target,
        location: dump.location,
        format: definition.format,
        expectedSha256: dump.sha256,
        mode: input.restoreCheck,
        scratchServerUrl: deps.scratchServerUrl,
        timeoutMs: deps.timeoutMs,
        signal,
      });
      restoreCheck = await countRestoreCheck(deps.metrics, definition.name, checked);
      logger.info({ restoreCheck }, 'backup restore check passed');
    }
    const recorded = await backupRepository.succeed(db, row, {
      location: dump.location,
      bytes: dump.bytes,
      sha256: dump.sha256,
      restoreCheck: restoreCheck === undefined ? null : { ...restoreCheck },
    });
    if (!recorded) throw new BackupSupersededError(row.id);
    const pruned = await pruneOld(input, deps, logger);
    return { backupId: row.id, outcome: 'succeeded', location: dump.location, bytes: dump.bytes, sha256: dump.sha256, pruned };
  } catch (thrown) {
    const error = guard.tripped() ? new BackupMemoryLimitError(guard.peakBytes(), deps.memoryLimitBytes, { cause: thrown }) : coerceError(thrown);
    logger.error({ err: error, location: location ?? null }, 'backup run failed');
    // Written but unusable (failed check, or the success row could not be stored): not a backup.
    if (location !== undefined) {
      await deps.target.remove(location).catch((removeError: unknown) => logger.error({ err: removeError, location }, 'could not remove a failed backup'));
    }
    // Fenced: a superseded attempt leaves the row to the attempt that took it over.
    await backupRepository
      .fail(db, row, toStoredError(error), location === undefined ? undefined : { mode: input.restoreCheck, passed: false, location })
      .catch((writeError: unknown) => logger.error({ err: writeError }, 'could not record the failed backup'));
    throw error;
  } finally {
    guard.stop();
  }
}

/**
 * Removes the unfinished files of this definition's attempts that are no longer running (a worker
 * killed mid-dump). Best effort: a failure is logged and the next run tries again.
 */
async function sweepAbandoned(name: string, ownToken: string, deps: BackupRunDeps, logger: Logger): Promise<void> {
  try {
    const live = new Set([ownToken, ...(await backupRepository.runningTokens(deps.database.db, name))].map((t) => t.slice(0, RUN_TAG_LENGTH)));
    const removed = await deps.target.removeAbandoned(retentionPrefix(name), (fileName) => live.has(runTagOf(fileName) ?? ''));
    if (removed.length > 0) logger.warn({ removed }, 'removed unfinished backup files left by attempts that are no longer running');
  } catch (error) {
    logger.error({ err: error }, 'could not sweep unfinished backup files; the next run tries again');
  }
}

/** Retention after a success; its failure is logged, never fails the backup that just succeeded. */
async function pruneOld(input: BackupRunInput, deps: BackupRunDeps, logger: Logger): Promise<string[]> {
  const { retention, name } = input.definition;
  if (retention.keepLast === undefined && retention.maxAgeDays === undefined) return [];
  try {
    const { deleted } = await applyRetention(deps.target, { prefix: retentionPrefix(name), ...retention });
    const locations = deleted.map((b) => b.location);
    const rows = await backupRepository.markPruned(deps.database.db, name, locations);
    if (locations.length > 0) logger.info({ deleted: locations, rowsMarked: rows }, 'retention pruned old backups');
    return locations;
  } catch (error) {
    logger.error({ err: error }, 'retention failed; old backups stay until the next run');
    return [];
  }
}

/** Counts a restore check's verdict; an unreachable target or server is no verdict and not counted. */
export async function countRestoreCheck<T>(metrics: Pick<Metrics, 'backupRestoreChecks'>, schedule: string, check: Promise<T>): Promise<T> {
  try {
    const result = await check;
    metrics.backupRestoreChecks.inc({ schedule, result: 'passed' });
    return result;
  } catch (error) {
    if (error instanceof JobfleetError && !error.retryable) metrics.backupRestoreChecks.inc({ schedule, result: 'failed' });
    throw error;
  }
}

function watchMemory(limitBytes: number) {
  const controller = new AbortController();
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss();
    peak = Math.max(peak, rss);
    if (rss > limitBytes) controller.abort(new Error(`resident memory ${rss} bytes exceeds ${limitBytes}`));
  }, MEMORY_SAMPLE_MS);
  timer.unref();
  return {
    signal: controller.signal,
    tripped: () => controller.signal.aborted,
    peakBytes: () => peak,
    stop: () => clearInterval(timer),
  };
}
