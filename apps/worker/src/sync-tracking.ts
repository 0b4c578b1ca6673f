import { coerceError, JobfleetError, PermanentError, toStoredError } from '@jobfleet/contracts';
import { syncStatusRepository, type Database, type SyncEntity } from '@jobfleet/db';
import type { Logger } from '@jobfleet/observability';
import type { z } from 'zod';
import type { ProcessorContext } from '@jobfleet/queue';

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

/**
 * Runs one attempt of a sync and records it: running -> synced, or the failure (final when the
 * error is permanent or no attempt is left). The job completes only after `synced` is durable,
 * so a Postgres outage makes the attempt fail and retry rather than lose the status.
 */
export async function trackSyncStatus<R>(
  { database, logger }: { database: Database; logger: Logger },
  entity: SyncEntity,
  context: ProcessorContext,
  work: () => Promise<{ result: R; externalRef: string }>,
): Promise<R> {
  const { db } = database;
  await syncStatusRepository.recordRunning(db, entity, context.attempt);
  let outcome: { result: R; externalRef: string };
  try {
    outcome = await work();
  } catch (thrown) {
    const error = coerceError(thrown);
    const final = context.finalAttempt || (error instanceof JobfleetError && !error.retryable);
    // If Postgres is down too, the original error still decides the job's fate.
    await syncStatusRepository
      .recordFailure(db, entity, context.attempt, toStoredError(error), final)
      .catch((writeError: unknown) => {
        logger.error({ err: coerceError(writeError), ...entity }, 'could not record the failure in sync_status');
      });
    throw error;
  }
  await syncStatusRepository.recordSynced(db, entity, context.attempt, outcome.externalRef);
  return outcome.result;
}
