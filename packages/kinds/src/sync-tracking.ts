import { DependencyWaitError, coerceError, PermanentError, toStoredError } from '@jobfleet/contracts';
import { syncStatusRepository, type Database, type SyncEntity } from '@jobfleet/db';
import type { Logger } from '@jobfleet/observability';
import type { Job } from 'bullmq';
import { z } from 'zod';
import type { AttemptDecision, ProcessorContext } from '@jobfleet/queue';
import type { DependencyGuard } from '@jobfleet/resilience';
import type { AnyJobKind, KindIntake } from './define';
import { noteBusinessKey } from './job-history';

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
  /** The Postgres guard: status writes go through its breaker, once per flush of the worker rows. */
  postgres: DependencyGuard;
}

// Between tries of the final status write while Postgres is away.
const WRITE_RETRY_MIN_MS = 250;
const WRITE_RETRY_MAX_MS = 5000;

/**
 * Runs one attempt of a sync and records its start and its success: running -> synced, the latter
 * with the run's end in the attempt history. A failure
 * is recorded by `recordAttemptDecision`, from the attempt policy's decision, once the error has
 * left the processor.
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
  await syncStatusRepository.recordRunning(db, entity, context.attempt, postgres);
  const outcome = await work();
  // The run's end goes out in the synced row's flush: the job waits for one flush, not two.
  void context.recordCompletion();
  await untilWritten(() => syncStatusRepository.recordSynced(db, entity, context.attempt, outcome.externalRef, postgres), context, logger);
  return outcome.result;
}

const jobEnvelopeSchema = z.object({ tenantId: z.string().min(1), request: z.unknown() });

/**
 * The sync_status entity of one request of a sync kind (its intake names entity and version),
 * parsed from `job`'s data. Its entity id is the job's business key in the attempt history, which
 * then need not parse the request again.
 */
export function syncEntityOf<Req>(kind: { name: string; syncKind: string | null; intake: KindIntake<Req> }, tenantId: string, request: Req, job: Job): SyncEntity {
  if (kind.syncKind === null) throw new Error(`job kind ${kind.name} keeps no sync status`);
  const entityId = kind.intake.entityId(request);
  noteBusinessKey(job.data, entityId);
  return { tenantId, kind: kind.syncKind, entityId, version: kind.intake.version(request), jobId: job.id ?? 'unknown' };
}

/** The entity a job of a sync kind reports on; undefined for other kinds and payloads that never parsed. */
function entityOfJob(kind: AnyJobKind, job: Job): SyncEntity | undefined {
  if (kind.syncKind === null) return undefined;
  const data = jobEnvelopeSchema.safeParse(job.data);
  const request = data.success ? kind.requestSchema.safeParse(data.data.request) : undefined;
  // A payload that never parsed names no entity; the failed job itself keeps the reason.
  if (!data.success || !request?.success) return undefined;
  return syncEntityOf(kind, data.data.tenantId, request.data, job);
}

/**
 * Writes what the attempt policy decided for a failed attempt into the entity's status, before
 * BullMQ carries it out: `waiting` (no attempt spent), `pending` (a retry will come) or `failed`.
 */
export async function recordAttemptDecision(
  { database, postgres }: Pick<SyncTrackingDeps, 'database' | 'postgres'>,
  kind: AnyJobKind,
  job: Job,
  decision: AttemptDecision,
  error: Error,
  attempt: number,
): Promise<void> {
  const entity = entityOfJob(kind, job);
  if (entity === undefined) return;
  const { db } = database;
  await (decision.action === 'wait'
    ? syncStatusRepository.recordWaiting(db, entity, attempt, { ...toStoredError(error), message: `waiting: ${decision.reason}` }, postgres)
    : syncStatusRepository.recordFailure(db, entity, attempt, toStoredError(error), decision.action === 'fail', postgres));
}

/**
 * A job of a sync queue that failed without its processor (stalled more than maxStalledCount
 * times): its entity's status ends `failed` with BullMQ's reason instead of staying `running`.
 */
export async function recordUnprocessedFailure(database: Database, kind: AnyJobKind, job: Job, error: Error): Promise<void> {
  const entity = entityOfJob(kind, job);
  if (entity === undefined) return;
  const stored = { ...toStoredError(error), code: 'JOB_STALLED' };
  await syncStatusRepository.recordFailure(database.db, entity, job.attemptsMade, stored, true);
}

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
