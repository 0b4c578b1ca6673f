import { BackupSupersededError, createBackupTarget, runBackup, verifyLatestBackup, type BackupTarget } from '@jobfleet/backup';
import type { BackupConfig } from '@jobfleet/config';
import { backupJobSchema, coerceError, PermanentError, toStoredError, type BackupResult } from '@jobfleet/contracts';
import { backupRepository, type Database } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
import { jobOptionsFor, WorkerBusyError, type JobProcessor } from '@jobfleet/queue';
import type { DependencyGuard } from '@jobfleet/resilience';
import { Queue } from 'bullmq';
import type { KindWorker } from '../define';
import { parsePayload } from '../sync-tracking';
import { seedBackupGauges, slotOfScheduledJob, syncBackupSchedules } from './schedules';

interface BackupDeps {
  database: Database;
  logger: Logger;
  metrics: Metrics;
  backup: { config: BackupConfig; targets: ReadonlyMap<string, BackupTarget> };
}

// A worker over its memory limit hands the backup back for later (or for a worker with room).
const MEMORY_BUSY_DELAY_MS = 30_000;

/** Glue only: parse, find the definition and its target, run (or verify) it, count it. */
function backupProcessor(deps: BackupDeps): JobProcessor<unknown, unknown> {
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

/**
 * S3 (or a mounted directory): listing, reading and deleting are guarded calls; an upload is one
 * long stream bounded by BACKUP_TIMEOUT_SECONDS, so only its completion counts for the breaker.
 */
function guardBackupTarget(target: BackupTarget & { close(): void }, guard: DependencyGuard): BackupTarget & { close(): void } {
  const idempotent = { idempotent: true };
  return {
    kind: target.kind,
    description: target.description,
    close: () => target.close(),
    begin: async (fileName) => {
      const upload = await guard.call('begin', () => target.begin(fileName));
      return {
        stream: upload.stream,
        location: upload.location,
        abort: () => upload.abort(),
        commit: () => guard.call('commit', () => upload.commit(), { timeoutMs: 0 }),
      };
    },
    open: (location) => guard.call('open', () => target.open(location), idempotent),
    list: (namePrefix) => guard.call('list', () => target.list(namePrefix), idempotent),
    remove: (location) => guard.call('remove', () => target.remove(location), idempotent),
    removeAbandoned: (namePrefix, isLive) => guard.call('removeAbandoned', () => target.removeAbandoned(namePrefix, isLive), idempotent),
  };
}

export const backupWorker: KindWorker = {
  async start({ config, database, redis, logger, metrics, guards }) {
    const targets = new Map(
      await Promise.all(
        config.backup.targets.map(async (target) => {
          const created = await createBackupTarget(target, config.backup.s3);
          return [target.name, created.kind === 's3' ? guardBackupTarget(created, guards.s3) : created] as const;
        }),
      ),
    );
    // Every worker serving backups makes the schedulers match its definitions, then seeds the gauges.
    const queue = new Queue('backup', { connection: redis.forQueue('backup'), prefix: config.redis.prefix });
    try {
      await syncBackupSchedules(
        queue,
        { definitions: config.backup.definitions, maxConcurrent: config.backup.maxConcurrent, jobOptions: jobOptionsFor('backup', config) },
        logger,
      );
    } finally {
      await queue.close();
    }
    await seedBackupGauges(database, metrics);
    return {
      processor: backupProcessor({ database, logger, metrics, backup: { config: config.backup, targets } }),
      // Backup runs keep their own rows: a run the processor never finished ends failed, not running.
      onDecision: () => Promise.resolve(),
      onUnprocessedFailure: async (job, error) => {
        await backupRepository.failRunningOfJob(database.db, job.id ?? '', { ...toStoredError(error), code: 'JOB_STALLED' });
      },
      close: () => {
        for (const target of targets.values()) target.close();
        return Promise.resolve();
      },
    };
  },
};
