import { BackupSupersededError, runBackup, verifyLatestBackup, type BackupTarget } from '@jobfleet/backup';
import type { BackupConfig } from '@jobfleet/config';
import { backupJobSchema, coerceError, PermanentError, toStoredError, type BackupResult } from '@jobfleet/contracts';
import { backupRepository, type Database } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
import { WorkerBusyError, type JobProcessor } from '@jobfleet/queue';
import { slotOfScheduledJob } from '../backup-schedules';
import { parsePayload } from '../sync-tracking';

export interface BackupDeps {
  database: Database;
  logger: Logger;
  metrics: Metrics;
  backup: { config: BackupConfig; targets: ReadonlyMap<string, BackupTarget> };
}

// A worker over its memory limit hands the backup back for later (or for a worker with room).
const MEMORY_BUSY_DELAY_MS = 30_000;

/** Glue only: parse, find the definition and its target, run (or verify) it, count it. */
export function backupProcessor(deps: BackupDeps): JobProcessor<unknown, unknown> {
  const { config, targets } = deps.backup;
  return async (job, context): Promise<BackupResult> => {
    const data = parsePayload(backupJobSchema, job.data);
    const jobId = job.id ?? 'unknown';
    const slot = slotOfScheduledJob(jobId);
    const name = data.request.definition;
    const definition = config.definitions.find((d) => d.name === name);
    const target = definition && targets.get(definition.target.name);
    if (definition === undefined || target === undefined) {
      // A scheduler left by a removed definition, or a worker whose config lags the API's.
      const error = new PermanentError('BACKUP_UNKNOWN_DEFINITION', `backup definition "${name}" is not configured on this worker`);
      if (data.request.action !== 'verify') {
        // A run that should have happened: its failure is listed with the others.
        const { row } = await backupRepository.start(deps.database.db, { schedule: name, slot, target: 'unknown', jobId });
        await backupRepository.fail(deps.database.db, row, toStoredError(error));
        deps.metrics.backupRuns.inc({ schedule: name, result: 'failed' });
      }
      throw error;
    }
    if (process.memoryUsage.rss() > config.memoryLimitBytes) {
      context.logger.warn({ definition: name, limitBytes: config.memoryLimitBytes }, 'worker over its backup memory limit; backup deferred');
      throw new WorkerBusyError('over its backup memory limit', MEMORY_BUSY_DELAY_MS);
    }

    const runDeps = {
      database: deps.database,
      target,
      timeoutMs: config.timeoutMs,
      scratchServerUrl: config.scratchServerUrl,
      signal: context.signal,
      logger: context.logger,
      metrics: deps.metrics,
    };
    if (data.request.action === 'verify') {
      const mode = data.request.restoreCheck ?? definition.verify?.mode ?? 'list';
      return verifyLatestBackup({ definition, mode: mode === 'full' ? 'full' : 'list' }, runDeps);
    }

    const started = performance.now();
    try {
      const result = await runBackup(
        {
          definition,
          slot,
          jobId,
          ...(data.tenantId === undefined ? {} : { tenantId: data.tenantId }),
          restoreCheck: data.request.restoreCheck ?? definition.restoreCheck,
        },
        { ...runDeps, memoryLimitBytes: config.memoryLimitBytes },
      );
      deps.metrics.backupRuns.inc({ schedule: name, result: result.outcome });
      if (result.outcome === 'succeeded') {
        deps.metrics.backupDuration.observe({ schedule: name }, (performance.now() - started) / 1000);
        deps.metrics.backupBytes.set({ schedule: name }, result.bytes ?? 0);
        deps.metrics.backupLastSuccess.set({ schedule: name }, Date.now() / 1000);
      }
      return result;
    } catch (error) {
      // A superseded attempt is not a failed run: the attempt that took it over reports the run.
      if (!(error instanceof BackupSupersededError)) {
        deps.metrics.backupRuns.inc({ schedule: name, result: 'failed' });
        deps.metrics.backupDuration.observe({ schedule: name }, (performance.now() - started) / 1000);
      }
      throw coerceError(error);
    }
  };
}
