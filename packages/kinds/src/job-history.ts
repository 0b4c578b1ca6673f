import { toStoredError } from '@jobfleet/contracts';
import { recordAttempt, type AttemptEvent, type Database, type JobIdentity } from '@jobfleet/db';
import type { AttemptHistory } from '@jobfleet/queue';
import type { DependencyGuard } from '@jobfleet/resilience';
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
 * Business keys of job data its kind's processor already parsed, by the data object (BullMQ gives
 * updated data a new one): the history takes them rather than parsing the request again.
 */
const knownBusinessKeys = new WeakMap<object, string>();

/** `data` (a job's, as BullMQ holds it) parsed to a request whose entity id is `businessKey`. */
export function noteBusinessKey(data: unknown, businessKey: string): void {
  if (typeof data === 'object' && data !== null) knownBusinessKeys.set(data, businessKey);
}

function businessKeyOf(kind: AnyJobKind, job: Pick<Job, 'data'>, request: unknown): string | null {
  const known = typeof job.data === 'object' && job.data !== null ? knownBusinessKeys.get(job.data as object) : undefined;
  if (known !== undefined) return known;
  const parsed = kind.requestSchema.safeParse(request);
  return parsed.success ? kind.intake.entityId(parsed.data) : null;
}

/**
 * The jobs row identity of a job in Redis: its tenant, its kind's entity as the business key, its
 * idempotency key, and its enqueue time as the API recorded it (BullMQ's timestamp for a job the
 * API never saw). A payload that does not parse still gets a row, without those it cannot give.
 */
export function jobIdentityOf(kind: AnyJobKind, job: Pick<Job, 'id' | 'data' | 'timestamp'>): JobIdentity {
  const envelope = jobEnvelope.safeParse(job.data);
  const data = envelope.success ? envelope.data : undefined;
  return {
    kind: kind.name,
    id: job.id ?? 'unknown',
    tenantId: data?.tenantId ?? null,
    businessKey: businessKeyOf(kind, job, data?.request),
    idempotencyKey: data?.idempotencyKey ?? null,
    createdAt: new Date(data?.enqueuedAt ?? job.timestamp),
  };
}

/**
 * A run's start is written once the run has lasted this long. Most runs end sooner, and their end's
 * row carries the start: a job then costs one history write, not two, and its end waits for one
 * flush. The price: a run whose worker dies within this time leaves no row (the next run shows).
 */
export const START_WRITE_DELAY_MS = 1000;

/**
 * The attempt history of one kind's jobs, run by `workerId`: Postgres jobs and job_attempts rows,
 * written through the Postgres guard (its timeout and breaker, once per flush of the worker rows),
 * so an outage costs a job at most the guard's timeout, never a hang.
 */
export function attemptHistory({ database, postgres }: { database: Database; postgres: DependencyGuard }, kind: AnyJobKind, workerId: string): AttemptHistory {
  // Starts not written yet, by job and run: skipped when their end comes first.
  const startsDue = new Map<string, { timer: NodeJS.Timeout; skip(): void }>();
  const write = (event: AttemptEvent) => recordAttempt(database.db, event, postgres);

  return {
    record(job, { run, attempt, startedAt, ended }) {
      const key = JSON.stringify([kind.name, job.id, run]);
      // Parsed when a row is written, not at every start: most starts are never written.
      const eventOf = (): AttemptEvent => ({ job: jobIdentityOf(kind, job), run, attempt, workerId, startedAt });
      if (ended === undefined) {
        return new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            startsDue.delete(key);
            write(eventOf()).then(resolve, reject);
          }, START_WRITE_DELAY_MS);
          // A start not written by shutdown is not worth holding the process for.
          timer.unref();
          startsDue.set(key, { timer, skip: resolve });
        });
      }
      const due = startsDue.get(key);
      if (due !== undefined) {
        clearTimeout(due.timer);
        startsDue.delete(key);
        due.skip();
      }
      const stored = ended.error && toStoredError(ended.error);
      return write({ ...eventOf(), ended: { at: ended.at, outcome: ended.outcome, error: stored ? { code: stored.code, message: stored.message } : null } });
    },
  };
}
