import { sql, type SQL } from 'drizzle-orm';
import type { StoredError } from '@jobfleet/contracts';
import { createGroupCommit, type GroupCommit } from '@jobfleet/group-commit';
import { executePrepared, inKeyOrder, jsonRows, storedText } from './bulk-sql';
import type { Db } from './client';
import { classifyPostgresError, retryLostRaces } from './postgres-errors';
import { jobAttempts, jobs, syncStatus, type JobAttemptOutcome, type JobState, type SyncStatusValue } from './schema';

/**
 * The rows a worker writes while it runs jobs, per job and per run: the entity's sync_status
 * transitions and the attempt history (jobs, job_attempts). They go out by one group commit, and
 * each flush is one statement for all three tables, whatever the mix of rows it carries.
 */

export interface SyncEntity {
  tenantId: string;
  kind: string;
  entityId: string;
  /** Payload version; a write never lowers the stored version (out-of-order jobs). */
  version: number;
  jobId: string;
}

/**
 * One sync_status write. What a status sets besides itself is fixed by the status (see
 * statusUpsert): `running` keeps the last error (still worth seeing while it runs again), only
 * `synced` sets the external ref and the time of the sync.
 */
export interface StatusWrite {
  entity: SyncEntity;
  status: SyncStatusValue;
  attempts: number;
  /** Ignored for `running`. */
  lastError: StoredError | null;
  /** Read for `synced` only. */
  externalRef: string | null;
  at: Date;
}

/** Who a job is and what it is about: the same for its accepted row and every attempt of it. */
export interface JobIdentity {
  kind: string;
  id: string;
  tenantId: string | null;
  businessKey: string | null;
  idempotencyKey: string | null;
  /** When the job was enqueued: tells a reused id (its idempotency key expired) from the job before it. */
  createdAt: Date;
}

/** A run of a job's processor starting (`outcome` undefined) or ending. */
export interface AttemptEvent {
  job: JobIdentity;
  /** BullMQ's attemptsStarted: one per run, stalled re-runs included. */
  run: number;
  /** The retry policy's attempt number (1 for the first). */
  attempt: number;
  workerId: string;
  startedAt: Date;
  /** Set when the run ended. */
  ended?: { at: Date; outcome: JobAttemptOutcome; error: { code: string; message: string } | null };
}

export const rowKey = (e: Pick<SyncEntity, 'tenantId' | 'kind' | 'entityId'>) => JSON.stringify([e.tenantId, e.kind, e.entityId]);
export const jobKey = (job: Pick<JobIdentity, 'kind' | 'id'>) => JSON.stringify([job.kind, job.id]);

/** A job's identity as the columns of its `jobs` row, for jsonRows. */
export const jobIdentityRow = (job: JobIdentity) => ({
  kind: storedText(job.kind),
  id: storedText(job.id),
  tenant_id: storedText(job.tenantId),
  business_key: storedText(job.businessKey),
  idempotency_key: storedText(job.idempotencyKey),
  created_at: job.createdAt.toISOString(),
});

/**
 * The upsert of `writes` (one per row): a CTE or a statement of its own. Returns the rows it wrote.
 */
export function statusUpsert(unordered: readonly StatusWrite[]): SQL {
  // In key order, so that two statements writing the same rows lock them in one order and never deadlock.
  const writes = inKeyOrder(unordered, (write) => rowKey(write.entity));
  const rows = writes.map((w) => {
    const at = w.at.toISOString();
    return {
      tenant_id: storedText(w.entity.tenantId),
      kind: storedText(w.entity.kind),
      entity_id: storedText(w.entity.entityId),
      version: w.entity.version,
      job_id: storedText(w.entity.jobId),
      status: w.status,
      attempts: w.attempts,
      last_error: w.status === 'running' ? null : w.lastError,
      external_ref: w.status === 'synced' ? storedText(w.externalRef) : null,
      last_synced_at: w.status === 'synced' ? at : null,
      updated_at: at,
    };
  });
  // A job for an older version must not overwrite what a newer one recorded, and `synced` is
  // final for its version: a late write of the same version (an enqueue retried after its job
  // ran, an attempt that lost its lock to the run that succeeded) must not undo it.
  return sql`
    insert into ${syncStatus} as current (tenant_id, kind, entity_id, version, job_id, status, attempts, last_error, external_ref, last_synced_at, updated_at)
    select tenant_id, kind, entity_id, version, job_id, status, attempts, last_error, external_ref, last_synced_at, updated_at
    from json_to_recordset(${jsonRows(rows)}) as row (tenant_id text, kind text, entity_id text, version bigint, job_id text, status text,
      attempts integer, last_error jsonb, external_ref text, last_synced_at timestamptz, updated_at timestamptz)
    on conflict (tenant_id, kind, entity_id) do update set status = excluded.status, version = excluded.version, job_id = excluded.job_id,
      updated_at = excluded.updated_at, attempts = excluded.attempts,
      last_error = case when excluded.status = 'running' then current.last_error else excluded.last_error end,
      external_ref = case when excluded.status = 'synced' then excluded.external_ref else current.external_ref end,
      last_synced_at = case when excluded.status = 'synced' then excluded.last_synced_at else current.last_synced_at end
    where current.version < excluded.version or (current.version = excluded.version and (current.status <> 'synced' or excluded.status = 'synced'))
    returning tenant_id as "tenantId", kind, entity_id as "entityId"
  `;
}

/** The job's state once a run ended so: BullMQ delays a retry by its backoff, and a hard close leaves it for stalled recovery. */
const STATE_AFTER: Readonly<Record<JobAttemptOutcome, JobState>> = {
  completed: 'completed',
  failed: 'failed',
  retried: 'delayed',
  delayed: 'delayed',
  interrupted: 'waiting',
};

/** Attempts spent after a run: a delayed or interrupted run spent none. */
const attemptsAfter = ({ attempt, ended }: AttemptEvent) => (ended?.outcome === 'delayed' || ended?.outcome === 'interrupted' ? attempt - 1 : attempt);

/**
 * One statement for every row of a flush: the status upsert, the runs' rows in job_attempts and
 * the jobs' rows (created for a job no acceptor wrote, a scheduled one). A job's last error stays
 * while it runs again, and goes when it completes. Returns the keys of the status rows written.
 */
async function writeRows(db: Db, writes: readonly StatusWrite[], unorderedEvents: readonly AttemptEvent[]): Promise<Set<string>> {
  const events = inKeyOrder(unorderedEvents, (event) => jobKey(event.job)).map((e) => ({
    ...jobIdentityRow(e.job),
    run: e.run,
    attempt: e.attempt,
    attempts: attemptsAfter(e),
    worker_id: storedText(e.workerId),
    started_at: e.startedAt.toISOString(),
    finished_at: e.ended?.at.toISOString() ?? null,
    outcome: e.ended?.outcome ?? null,
    state: e.ended ? STATE_AFTER[e.ended.outcome] : 'active',
    error_code: storedText(e.ended?.error?.code ?? null),
    error_message: storedText(e.ended?.error?.message ?? null),
  }));
  const statement = sql`
    with status_row as (${statusUpsert(writes)}),
    event as (
      select * from json_to_recordset(${jsonRows(events)}) as e (kind text, id text, tenant_id text, business_key text, idempotency_key text,
        created_at timestamptz, run integer, attempt integer, attempts integer, worker_id text, started_at timestamptz, finished_at timestamptz,
        outcome text, state text, error_code text, error_message text)
    ), run_row as (
      insert into ${jobAttempts} (kind, job_id, run, attempt, worker_id, started_at, finished_at, outcome, error_code, error_message)
      select kind, id, run, attempt, worker_id, started_at, finished_at, outcome, error_code, error_message from event
      on conflict (kind, job_id, run) do update set finished_at = excluded.finished_at, outcome = excluded.outcome,
        error_code = excluded.error_code, error_message = excluded.error_message
      where excluded.finished_at is not null
    ), job_row as (
      insert into ${jobs} as current (kind, id, tenant_id, business_key, idempotency_key, state, attempts, last_error, created_at, updated_at)
      select kind, id, tenant_id, business_key, idempotency_key, state, attempts,
        case when error_code is null then null else jsonb_build_object('code', error_code, 'message', error_message) end,
        created_at, coalesce(finished_at, started_at)
      from event
      on conflict (kind, id) do update set state = excluded.state, attempts = excluded.attempts,
        last_error = case when excluded.state = 'active' then current.last_error when excluded.state = 'completed' then null else coalesce(excluded.last_error, current.last_error) end,
        tenant_id = excluded.tenant_id, business_key = excluded.business_key, idempotency_key = excluded.idempotency_key,
        created_at = excluded.created_at, updated_at = excluded.updated_at
      where current.created_at <= excluded.created_at
    )
    select "tenantId", kind, "entityId" from status_row
  `;
  // Its text is the same for every flush (the rows are its two parameters).
  const rows = await executePrepared<Pick<SyncEntity, 'tenantId' | 'kind' | 'entityId'>>(db, statement);
  return new Set(rows.map(rowKey));
}

type WorkerRow = { key: string; status: StatusWrite } | { key: string; attempt: AttemptEvent };

/** A row Postgres refused (for what it is, not for being away) when written alone. */
class RefusedRow {
  constructor(readonly error: unknown) {}
}

/** Per row: a status row's `written` (false: a newer version owns the row), true for a history row, or its refusal. */
type RowOutcome = boolean | RefusedRow;

async function writeBatch(db: Db, rows: readonly WorkerRow[]): Promise<RowOutcome[]> {
  const writes = rows.flatMap((row) => ('status' in row ? [row.status] : []));
  const events = rows.flatMap((row) => ('attempt' in row ? [row.attempt] : []));
  // It may deadlock with an admin action's transaction over the same rows: tried again.
  const written = await retryLostRaces(() => writeRows(db, writes, events));
  return rows.map((row) => !('status' in row) || written.has(rowKey(row.status.entity)));
}

/**
 * What a flush runs through: the worker's Postgres guard (its timeout, retries and breaker), once
 * per flush rather than once per row, and every caller of the flush gets what it throws. A
 * DependencyGuard is one.
 */
export interface StatementGuard {
  call<T>(operation: string, statement: () => Promise<T>, options: { idempotent: boolean }): Promise<T>;
}

const UNGUARDED: StatementGuard = { call: (_operation, statement) => statement() };

// Sized so a statement's arrays stay small enough to build and plan in a few milliseconds.
const MAX_ROWS_PER_FLUSH = 500;
const writers = new WeakMap<Db, WeakMap<StatementGuard, GroupCommit<WorkerRow, RowOutcome>>>();

/**
 * The worker rows of one database handle and guard: the rows of every job running at once share
 * one statement (one per tick under load, one per write when idle); two writes of one row never
 * share one, so they land in order. Each caller still waits until its own row is durable, and a
 * flush that fails fails every caller in it, but for a row Postgres refuses for what it holds:
 * the flush is then written again one row at a time, so the refused row fails alone and the other
 * jobs' rows are written (a refusal is no failure of Postgres for the guard either).
 */
function writerOf(db: Db, guard: StatementGuard): GroupCommit<WorkerRow, RowOutcome> {
  let byGuard = writers.get(db);
  if (byGuard === undefined) {
    byGuard = new WeakMap();
    writers.set(db, byGuard);
  }
  let writer = byGuard.get(guard);
  if (writer === undefined) {
    writer = createGroupCommit<WorkerRow, RowOutcome>({
      maxBatch: MAX_ROWS_PER_FLUSH,
      conflictKey: (row) => row.key,
      flush: (rows) => guard.call('writeWorkerRows', () => writeOrRefuse(db, rows), { idempotent: true }),
    });
    byGuard.set(guard, writer);
  }
  return writer;
}

async function writeOrRefuse(db: Db, rows: readonly WorkerRow[]): Promise<RowOutcome[]> {
  try {
    return await writeBatch(db, rows);
  } catch (error) {
    if (rows.length === 1 || classifyPostgresError(error) !== 'bug') throw error;
    const outcomes: RowOutcome[] = [];
    for (const row of rows) outcomes.push(await writeBatch(db, [row]).then(([outcome = false]) => outcome, (alone: unknown) => new RefusedRow(alone)));
    return outcomes;
  }
}

async function submit(db: Db, row: WorkerRow, guard: StatementGuard): Promise<boolean> {
  const outcome = await writerOf(db, guard).submit(row);
  if (outcome instanceof RefusedRow) throw outcome.error;
  return outcome;
}

/** Writes one sync_status transition; false when a newer version already owns the row (the write was skipped). */
export const writeStatus = (db: Db, status: StatusWrite, guard: StatementGuard = UNGUARDED): Promise<boolean> =>
  submit(db, { key: `s${rowKey(status.entity)}`, status }, guard);

/** Records a run's start or end in the attempt history. */
export const writeAttempt = async (db: Db, attempt: AttemptEvent, guard: StatementGuard = UNGUARDED): Promise<void> => {
  await submit(db, { key: `a${jobKey(attempt.job)}`, attempt }, guard);
};
