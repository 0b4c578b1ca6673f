import { JobfleetError } from '@jobfleet/contracts';
import { recordAttempt, type Db, type JobIdentity } from '@jobfleet/db';
import type { AttemptHistory } from '@jobfleet/queue';
import type { Job } from 'bullmq';
import { z } from 'zod';
import type { AnyJobKind } from './define';

// What every kind's job data has in common, loosely: a scheduled job carries no tenant nor key.
const jobEnvelope = z.object({
  tenantId: z.string().optional(),
  idempotencyKey: z.string().optional(),
  request: z.unknown(),
  enqueuedAt: z.iso.datetime().optional(),
});

/**
 * The jobs row identity of a job in Redis: its tenant, its kind's entity as the business key, its
 * idempotency key, and its enqueue time as the API recorded it (BullMQ's timestamp for a job the
 * API never saw). A payload that does not parse still gets a row, without those it cannot give.
 */
export function jobIdentityOf(kind: AnyJobKind, job: Pick<Job, 'id' | 'data' | 'timestamp'>): JobIdentity {
  const envelope = jobEnvelope.safeParse(job.data);
  const data = envelope.success ? envelope.data : undefined;
  const request = kind.requestSchema.safeParse(data?.request);
  return {
    kind: kind.name,
    id: job.id ?? 'unknown',
    tenantId: data?.tenantId ?? null,
    businessKey: request.success ? kind.intake.entityId(request.data) : null,
    idempotencyKey: data?.idempotencyKey ?? null,
    createdAt: new Date(data?.enqueuedAt ?? job.timestamp),
  };
}

/** The attempt history of one kind's jobs, run by `workerId`: Postgres jobs and job_attempts rows. */
export function attemptHistory(db: Db, kind: AnyJobKind, workerId: string): AttemptHistory {
  return {
    record(job, { run, attempt, startedAt, ended }) {
      const error = ended?.error && { code: ended.error instanceof JobfleetError ? ended.error.code : 'UNEXPECTED', message: ended.error.message };
      return recordAttempt(db, {
        job: jobIdentityOf(kind, job),
        run,
        attempt,
        workerId,
        startedAt,
        ...(ended === undefined ? {} : { ended: { at: ended.at, outcome: ended.outcome, error: error ?? null } }),
      });
    },
  };
}
