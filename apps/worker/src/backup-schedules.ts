import type { BackupDefinition } from '@jobfleet/config';
import type { BackupJob } from '@jobfleet/contracts';
import { backupRepository, type Database } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
import type { JobsOptions, Queue } from 'bullmq';

// Scheduler ids may not contain ':' (BullMQ builds `repeat:<id>:<slot millis>` job ids from them);
// definition names contain no dots, so `backup.` marks ours and the name follows unambiguously.
const SCHEDULER_PREFIX = 'backup.';
const SCHEDULED_JOB_ID = /^repeat:backup\.([a-z0-9_-]+):(\d+)$/;

export const schedulerIdFor = (definition: string): string => `${SCHEDULER_PREFIX}${definition}`;

/** The cron slot a scheduler's job was created for; null for a job that came from the API. */
export function slotOfScheduledJob(jobId: string): Date | null {
  const match = SCHEDULED_JOB_ID.exec(jobId);
  return match?.[2] === undefined ? null : new Date(Number(match[2]));
}

export interface BackupScheduleSync {
  upserted: string[];
  removed: string[];
}

/**
 * Makes the queue's schedulers match this worker's definitions. Every worker runs it at boot;
 * upserting a scheduler id is idempotent, so any number of workers booting together leave one
 * scheduler per definition, and a slot's job id is the same whoever creates it, so it runs once.
 * Schedulers of definitions no longer configured are removed.
 */
export async function syncBackupSchedules(
  queue: Queue,
  input: { definitions: readonly BackupDefinition[]; maxConcurrent: number; jobOptions: JobsOptions },
  logger: Logger,
): Promise<BackupScheduleSync> {
  await queue.setGlobalConcurrency(input.maxConcurrent);
  const { attempts, backoff, removeOnComplete, removeOnFail } = input.jobOptions;
  const upserted: string[] = [];
  for (const definition of input.definitions) {
    const data: BackupJob = { request: { definition: definition.name } };
    await queue.upsertJobScheduler(
      schedulerIdFor(definition.name),
      { pattern: definition.cron, tz: definition.timezone },
      { name: 'scheduled', data, opts: { attempts, backoff, removeOnComplete, removeOnFail } },
    );
    upserted.push(definition.name);
  }
  const wanted = new Set(input.definitions.map((d) => schedulerIdFor(d.name)));
  const removed: string[] = [];
  for (const scheduler of await queue.getJobSchedulers(0, -1)) {
    if (!scheduler.key.startsWith(SCHEDULER_PREFIX) || wanted.has(scheduler.key)) continue;
    if (await queue.removeJobScheduler(scheduler.key)) removed.push(scheduler.key.slice(SCHEDULER_PREFIX.length));
  }
  logger.info({ upserted, removed, maxConcurrent: input.maxConcurrent }, 'backup schedules synced');
  return { upserted, removed };
}

/** Seeds the last-success gauges from Postgres, so the overdue alert survives worker restarts. */
export async function seedBackupGauges(database: Database, metrics: Metrics): Promise<void> {
  for (const [schedule, last] of await backupRepository.lastSuccessBySchedule(database.db)) {
    metrics.backupLastSuccess.set({ schedule }, last.finishedAt.getTime() / 1000);
    if (last.bytes !== null) metrics.backupBytes.set({ schedule }, last.bytes);
  }
}
