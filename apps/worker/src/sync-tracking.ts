import {
  DependencyWaitError,
  coerceError,
  JobfleetError,
  PermanentError,
  QUEUE_INTAKE,
  QUEUES,
  toStoredError,
  type QueueIntake,
  type QueueName,
} from '@jobfleet/contracts';
import { syncStatusRepository, type Database, type SyncEntity } from '@jobfleet/db';
import type { Logger } from '@jobfleet/observability';
import type { Job } from 'bullmq';
import { z } from 'zod';
import type { ProcessorContext } from '@jobfleet/queue';
import type { DependencyGuard } from '@jobfleet/resilience';

/** A payload that does not parse can never succeed: fail the job alone, never the worker. */
export function parsePayload<S extends z.ZodType>(schema: S, data: unknown): z.output<S> {
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    throw new PermanentError('INVALID_PAYLOAD', 'job payload does not match the queue contract', {
      details: { issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return parsed.data;
}

export interface SyncTrackingDeps {
  database: Database;
  logger: Logger;
  /** The Postgres guard: status writes go through its breaker. */
  postgres: DependencyGuard;
}

// Between tries of the final status write while Postgres is away.
const WRITE_RETRY_MIN_MS = 250;
const WRITE_RETRY_MAX_MS = 5000;

/**
 * Runs one attempt of a sync and records it: running -> synced, or the failure (final when the
 * error is permanent or no attempt is left), or `waiting` when a dependency's breaker is open (the
 * worker then re-delays the job without spending an attempt).
 *
 * The job completes only after `synced` is durable. When Postgres is down at that point the effect
 * has already happened, so the write is retried (through the breaker) for as long as the attempt
 * lasts rather than failing the attempt; if Postgres is down at the start, the Postgres breaker
 * opens and jobs wait without spending attempts.
 */
export async function trackSyncStatus<R>(
  { database, logger, postgres }: SyncTrackingDeps,
  entity: SyncEntity,
  context: ProcessorContext,
  work: () => Promise<{ result: R; externalRef: string }>,
): Promise<R> {
  const { db } = database;
  const write = (operation: string, statement: () => Promise<unknown>) => postgres.call(operation, statement, { idempotent: true });
  await write('recordRunning', () => syncStatusRepository.recordRunning(db, entity, context.attempt));
  let outcome: { result: R; externalRef: string };
  try {
    outcome = await work();
  } catch (thrown) {
    const error = coerceError(thrown);
    const final = context.finalAttempt || (error instanceof JobfleetError && !error.retryable);
    const recording =
      error instanceof DependencyWaitError
        ? syncStatusRepository.recordWaiting(db, entity, context.attempt, { ...toStoredError(error), message: `waiting: ${error.dependency} unavailable` })
        : syncStatusRepository.recordFailure(db, entity, context.attempt, toStoredError(error), final);
    // If Postgres is down too, the original error still decides the job's fate.
    await write('recordFailure', () => recording).catch((writeError: unknown) => {
      logger.error({ err: coerceError(writeError), ...entity }, 'could not record the failure in sync_status');
    });
    throw error;
  }
  await untilWritten(() => write('recordSynced', () => syncStatusRepository.recordSynced(db, entity, context.attempt, outcome.externalRef)), context, logger);
  return outcome.result;
}

/**
 * A job of a sync queue that failed without its processor (stalled more than maxStalledCount
 * times): its entity's status ends `failed` with BullMQ's reason instead of staying `running`.
 */
export async function recordUnprocessedFailure(database: Database, queue: QueueName, job: Job, error: Error): Promise<void> {
  const kind = QUEUES[queue].syncKind;
  if (kind === null) return;
  const intake: QueueIntake = QUEUE_INTAKE[queue];
  const data = unprocessedJobSchema.safeParse(job.data);
  const request = data.success ? intake.requestSchema.safeParse(data.data.request) : undefined;
  // A payload that never parsed names no entity; the failed job itself keeps the reason.
  if (!data.success || !request?.success) return;
  const entity = { tenantId: data.data.tenantId, kind, entityId: intake.entityId(request.data), version: intake.version(request.data), jobId: job.id ?? 'unknown' };
  const stored = { ...toStoredError(error), code: 'JOB_STALLED' };
  await syncStatusRepository.recordFailure(database.db, entity, job.attemptsMade, stored, true);
}

const unprocessedJobSchema = z.object({ tenantId: z.string().min(1), request: z.unknown() });

/** Retries `statement` with capped backoff until it succeeds or the attempt's signal fires. */
async function untilWritten(statement: () => Promise<unknown>, context: ProcessorContext, logger: Logger): Promise<void> {
  for (let tries = 1; ; tries++) {
    try {
      await statement();
      return;
    } catch (error) {
      if (context.signal.aborted) throw error;
      const wait = error instanceof DependencyWaitError ? Math.max(error.retryAfterMs, WRITE_RETRY_MIN_MS) : Math.min(WRITE_RETRY_MIN_MS * 2 ** tries, WRITE_RETRY_MAX_MS);
      if (tries === 1) context.logger.warn({ err: coerceError(error), retryInMs: wait }, 'sync_status write failed after the effect; retrying until Postgres answers');
      else logger.debug({ tries, retryInMs: wait }, 'sync_status write still failing');
      await sleep(Math.min(wait, WRITE_RETRY_MAX_MS), context.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
