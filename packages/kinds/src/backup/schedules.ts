import type { BackupDefinition } from '@jobfleet/config';
import type { BackupJob } from '@jobfleet/contracts';
import { backupRepository, type Database } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
import type { JobsOptions, Queue } from 'bullmq';

// Scheduler ids may not contain ':' (BullMQ builds `repeat:<id>:<slot millis>` job ids from them);
// definition names contain no dots, so the prefix marks ours and the name follows unambiguously.
const SCHEDULER_PREFIXES = { backup: 'backup.', verify: 'backup-verify.' } as const;
const SCHEDULED_JOB_ID = /^repeat:backup\.([a-z0-9_-]+):(\d+)$/;

export const schedulerIdFor = (definition: string, action: 'backup' | 'verify' = 'backup'): string =>
  `${SCHEDULER_PREFIXES[action]}${definition}`;
const isOurs = (schedulerId: string) => Object.values(SCHEDULER_PREFIXES).some((prefix) => schedulerId.startsWith(prefix));

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
 * Makes the queue's schedulers match this worker's definitions (a backup scheduler each, and a
 * verify scheduler for those with a `verify` schedule). Every worker runs it at boot;
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
  const opts = { attempts, backoff, removeOnComplete, removeOnFail };
  const upserted: string[] = [];
  for (const definition of input.definitions) {
    const data: BackupJob = { request: { definition: definition.name } };
    const id = schedulerIdFor(definition.name);
    await queue.upsertJobScheduler(id, { pattern: definition.cron, tz: definition.timezone }, { name: 'scheduled', data, opts });
    upserted.push(id);
    if (definition.verify === undefined) continue;
    const verifyId = schedulerIdFor(definition.name, 'verify');
    const verifyData: BackupJob = { request: { definition: definition.name, action: 'verify', restoreCheck: definition.verify.mode } };
    await queue.upsertJobScheduler(verifyId, { pattern: definition.verify.cron, tz: definition.timezone }, { name: 'verify', data: verifyData, opts });
    upserted.push(verifyId);
  }
  const wanted = new Set(upserted);
  const removed: string[] = [];
  for (const scheduler of await queue.getJobSchedulers(0, -1)) {
    if (!isOurs(scheduler.key) || wanted.has(scheduler.key)) continue;
    if (await queue.removeJobScheduler(scheduler.key)) removed.push(scheduler.key);
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
