import type { SyncStatusRow } from '@jobfleet/db';
import type { Job } from 'bullmq';
import { z } from 'zod';
import { publicJobError, type TenantJob } from '../jobs';

// The one Job resource of /v2, whatever the kind: the facts known of a job, from wherever they
// were read (Redis while it retains the job, the stored sync status after), mapped to one shape
// with a stable status. A list of jobs maps its rows through jobResource too.

/** A job's status; stable: clients may switch on it, and a new value would be a new API version. */
export const JOB_STATUSES = ['queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled', 'expired'] as const;
type JobStatus = (typeof JOB_STATUSES)[number];

/** What a job's status says, for the docs. */
export const JOB_STATUS_MEANINGS: Readonly<Record<JobStatus, string>> = {
  queued: 'accepted, waiting for a worker',
  running: 'a worker runs an attempt',
  waiting: 'between attempts: backing off after a failure, or deferred while a dependency is down (no attempt spent)',
  succeeded: 'done',
  failed: 'failed for good; `error` says why',
  cancelled: 'cancelled while it ran (BullMQ cancelJob); not retried',
  expired: 'Redis no longer retains the job and no stored status tells how it ended',
};

/** A failed attempt as producers see it (no stack, no SQL). */
interface JobError {
  code: string;
  message: string;
  /** Whether another attempt will come. */
  retryable: boolean;
}

/** Everything the Job resource is made of, read from Redis, Postgres or both. */
export interface JobFacts {
  id: string;
  kind: string;
  tenantId: string;
  status: JobStatus;
  idempotencyKey: string | null;
  attempts: number | null;
  maxAttempts: number | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
  request: unknown;
  result: unknown;
  error: JobError | null;
  /** The entity whose sync status the job writes, for a kind that keeps one. */
  sync: { kind: string; entityId: string } | null;
}

export const jobLinkV2 = (jobId: string) => `/v2/jobs/${encodeURIComponent(jobId)}`;
export const syncLinkV2 = (kind: string, entityId: string) => `/v2/sync/${encodeURIComponent(kind)}/${encodeURIComponent(entityId)}`;

const linksOf = (id: string, sync: JobFacts['sync']) => ({ self: jobLinkV2(id), ...(sync === null ? {} : { sync: syncLinkV2(sync.kind, sync.entityId) }) });

/** A failed attempt as an RFC 9457 problem: a job's error reads like the API's own. */
function errorProblem(error: JobError) {
  return {
    type: '/problems/job-attempt-failed',
    title: 'A job attempt failed',
    detail: error.message,
    code: error.code,
    retryable: error.retryable,
  };
}

/** The Job resource. */
export function jobResource(facts: JobFacts) {
  const iso = (at: Date | null) => at?.toISOString() ?? null;
  return {
    id: facts.id,
    kind: facts.kind,
    tenantId: facts.tenantId,
    status: facts.status,
    idempotencyKey: facts.idempotencyKey,
    attempts: facts.attempts,
    maxAttempts: facts.maxAttempts,
    createdAt: facts.createdAt.toISOString(),
    startedAt: iso(facts.startedAt),
    finishedAt: iso(facts.finishedAt),
    updatedAt: facts.updatedAt.toISOString(),
    request: facts.request ?? null,
    result: facts.result ?? null,
    error: facts.error === null ? null : errorProblem(facts.error),
    links: linksOf(facts.id, facts.sync),
  };
}

/** An accepted job as the enqueue routes answer it: what is known before it runs. */
export function acceptedJobResource(job: { id: string; kind: string; tenantId: string; idempotencyKey: string; sync: JobFacts['sync'] }) {
  return { id: job.id, kind: job.kind, tenantId: job.tenantId, status: 'queued' as const satisfies JobStatus, idempotencyKey: job.idempotencyKey, links: linksOf(job.id, job.sync) };
}

// The worker fails a job cancelled through its signal (BullMQ cancelJob) with this code, for good.
const CANCELLED_CODE = 'JOB_CANCELLED';

/** A BullMQ state (and the job's failure) as a status. */
function statusOfBullState(bullState: string, error: JobError | null): JobStatus {
  switch (bullState) {
    case 'waiting':
    case 'prioritized':
      return 'queued';
    case 'active':
      return 'running';
    // Backing off before a retry, deferred for a dependency, or waiting for its children.
    case 'delayed':
    case 'waiting-children':
      return 'waiting';
    case 'completed':
      return 'succeeded';
    case 'failed':
      return error?.code === CANCELLED_CODE ? 'cancelled' : 'failed';
    // Removed between the reads.
    default:
      return 'expired';
  }
}

/** A stored sync status as the status of the job that wrote it. */
function statusOfSyncRow(row: Pick<SyncStatusRow, 'status'>): JobStatus {
  switch (row.status) {
    case 'pending':
      return 'queued';
    case 'running':
      return 'running';
    case 'waiting':
      return 'waiting';
    case 'synced':
      return 'succeeded';
    case 'failed':
      return 'failed';
    // An operator cancelled it (the job admin API), which also removed it from Redis.
    case 'cancelled':
      return 'cancelled';
    default:
      return row.status satisfies never;
  }
}

// What the API put in job.data (prepareJob); read defensively, a job from before a deploy may lack fields.
const jobData = z.object({ idempotencyKey: z.string().optional(), request: z.unknown() }).partial();
const storedError = z.object({ code: z.string(), message: z.string() });
const at = (ms: number | undefined) => (ms === undefined || ms === 0 ? null : new Date(ms));

/** The facts of a job read by the job reader (jobs.ts), while Redis retains it or after. */
export function factsOfTenantJob(tenantId: string, { id, queue, acceptedAt, job, sync }: TenantJob): JobFacts {
  const syncRef = sync === undefined ? null : { kind: sync.kind, entityId: sync.entityId };
  if (job === undefined) return factsOfStoredStatus({ id, kind: queue, tenantId, acceptedAt, sync, syncRef });
  return factsOfBullJob({ id, kind: queue, tenantId }, job.job, job.bullState, syncRef);
}

function factsOfBullJob({ id, kind, tenantId }: Pick<JobFacts, 'id' | 'kind' | 'tenantId'>, job: Job, bullState: string, sync: JobFacts['sync']): JobFacts {
  const data = jobData.safeParse(job.data);
  const failed = publicJobError(job, bullState);
  const finishedAt = at(job.finishedOn);
  const startedAt = at(job.processedOn);
  return {
    id,
    kind,
    tenantId,
    status: statusOfBullState(bullState, failed),
    idempotencyKey: data.success ? (data.data.idempotencyKey ?? null) : null,
    attempts: job.attemptsMade,
    maxAttempts: job.opts.attempts ?? 1,
    createdAt: new Date(job.timestamp),
    startedAt,
    finishedAt,
    updatedAt: finishedAt ?? startedAt ?? new Date(job.timestamp),
    request: data.success ? data.data.request : null,
    result: job.returnvalue as unknown,
    error: failed,
    sync,
  };
}

function factsOfStoredStatus(job: { id: string; kind: string; tenantId: string; acceptedAt: Date; sync: SyncStatusRow | undefined; syncRef: JobFacts['sync'] }): JobFacts {
  const { sync } = job;
  const lastError = storedError.safeParse(sync?.lastError);
  const status = sync === undefined ? 'expired' : statusOfSyncRow(sync);
  return {
    id: job.id,
    kind: job.kind,
    tenantId: job.tenantId,
    status,
    idempotencyKey: null,
    attempts: sync?.attempts ?? null,
    maxAttempts: null,
    createdAt: job.acceptedAt,
    startedAt: null,
    finishedAt: status === 'succeeded' || status === 'failed' ? (sync?.updatedAt ?? null) : null,
    updatedAt: sync?.updatedAt ?? job.acceptedAt,
    request: null,
    result: null,
    error: lastError.success ? { code: lastError.data.code, message: lastError.data.message, retryable: status !== 'failed' } : null,
    sync: job.syncRef,
  };
}
