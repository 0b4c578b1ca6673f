import { and, asc, count, desc, eq, gte, inArray, lt, sql, type SQL } from 'drizzle-orm';
import { createGroupCommit, type GroupCommit } from '@jobfleet/group-commit';
import { adminAuditRepository, type AdminAuditEntry } from './admin-audit';
import { arrayParam, sortedByKey } from './bulk-sql';
import { retryLostRaces } from './postgres-errors';
import type { Db } from './client';
import { jobAttempts, jobs, syncStatus, type JobAttemptOutcome, type JobState } from './schema';

export type JobRow = typeof jobs.$inferSelect;
export type JobAttemptRow = typeof jobAttempts.$inferSelect;

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

const jobKey = (job: Pick<JobIdentity, 'kind' | 'id'>) => JSON.stringify([job.kind, job.id]);

// Sized so a statement's arrays stay small enough to build and plan in a few milliseconds.
const MAX_ROWS_PER_STATEMENT = 500;

/**
 * The accepted jobs' rows (state waiting), in one statement. A row of the same job that a worker
 * already wrote (it may start before this commits) is left alone; a row of an older job under the
 * same id (a reused idempotency key) starts over.
 */
export async function recordAcceptedJobs(db: Db, unordered: readonly JobIdentity[]): Promise<void> {
  if (unordered.length === 0) return;
  // In key order (sortedByKey): an acceptor's statement and a worker's may write the same jobs' rows
  // (a worker can start a job before its acceptor's write lands).
  const accepted = sortedByKey(unordered, jobKey);
  const column = (value: (job: JobIdentity) => string | null, type: 'text' | 'timestamptz') => arrayParam(accepted.map(value), type);
  await db.execute(sql`
    insert into ${jobs} as current (kind, id, tenant_id, business_key, idempotency_key, state, attempts, created_at, updated_at)
    select kind, id, tenant_id, business_key, idempotency_key, 'waiting', 0, created_at, now()
    from unnest(${column((j) => j.kind, 'text')}, ${column((j) => j.id, 'text')}, ${column((j) => j.tenantId, 'text')},
      ${column((j) => j.businessKey, 'text')}, ${column((j) => j.idempotencyKey, 'text')}, ${column((j) => j.createdAt.toISOString(), 'timestamptz')})
      as row (kind, id, tenant_id, business_key, idempotency_key, created_at)
    on conflict (kind, id) do update set tenant_id = excluded.tenant_id, business_key = excluded.business_key,
      idempotency_key = excluded.idempotency_key, state = 'waiting', attempts = 0, last_error = null,
      created_at = excluded.created_at, updated_at = excluded.updated_at
    where current.created_at < excluded.created_at
  `);
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
 * One statement for many jobs' runs: the runs' rows in job_attempts and the jobs' rows (created for
 * a job no acceptor wrote, a scheduled one). A job's last error stays while it runs again, and goes
 * when it completes.
 */
async function writeAttempts(db: Db, unordered: readonly AttemptEvent[]): Promise<void> {
  // In the acceptors' key order, as recordAcceptedJobs writes these rows.
  const events = sortedByKey(unordered, (event) => jobKey(event.job));
  type Value = string | number | null;
  const column = (value: (event: AttemptEvent) => Value, type: 'text' | 'integer' | 'timestamptz') => arrayParam(events.map(value), type);
  const iso = (date: Date | undefined) => date?.toISOString() ?? null;
  await db.execute(sql`
    with event as (
      select * from unnest(${column((e) => e.job.kind, 'text')}, ${column((e) => e.job.id, 'text')}, ${column((e) => e.job.tenantId, 'text')},
        ${column((e) => e.job.businessKey, 'text')}, ${column((e) => e.job.idempotencyKey, 'text')}, ${column((e) => iso(e.job.createdAt), 'timestamptz')},
        ${column((e) => e.run, 'integer')}, ${column((e) => e.attempt, 'integer')}, ${column(attemptsAfter, 'integer')}, ${column((e) => e.workerId, 'text')},
        ${column((e) => iso(e.startedAt), 'timestamptz')}, ${column((e) => iso(e.ended?.at), 'timestamptz')}, ${column((e) => e.ended?.outcome ?? null, 'text')},
        ${column((e) => (e.ended ? STATE_AFTER[e.ended.outcome] : 'active'), 'text')}, ${column((e) => e.ended?.error?.code ?? null, 'text')},
        ${column((e) => e.ended?.error?.message ?? null, 'text')})
        as e (kind, id, tenant_id, business_key, idempotency_key, created_at, run, attempt, attempts, worker_id, started_at, finished_at, outcome, state, error_code, error_message)
    ), runs as (
      insert into ${jobAttempts} (kind, job_id, run, attempt, worker_id, started_at, finished_at, outcome, error_code, error_message)
      select kind, id, run, attempt, worker_id, started_at, finished_at, outcome, error_code, error_message from event
      on conflict (kind, job_id, run) do update set finished_at = excluded.finished_at, outcome = excluded.outcome,
        error_code = excluded.error_code, error_message = excluded.error_message
      where excluded.finished_at is not null
    )
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
  `);
}

const historyWriters = new WeakMap<Db, GroupCommit<AttemptEvent, undefined>>();

/**
 * Records a run's start or end. The events of every job running at once share one statement (a
 * group commit); a job's events never share one, so they land in order.
 */
export function recordAttempt(db: Db, event: AttemptEvent): Promise<void> {
  let writer = historyWriters.get(db);
  if (writer === undefined) {
    writer = createGroupCommit<AttemptEvent, undefined>({
      maxBatch: MAX_ROWS_PER_STATEMENT,
      conflictKey: (e) => jobKey(e.job),
      async flush(events) {
        // It may deadlock with an admin action's transaction over the same rows: tried again.
        await retryLostRaces(() => writeAttempts(db, events));
        return events.map(() => undefined);
      },
    });
    historyWriters.set(db, writer);
  }
  return writer.submit(event).then(() => undefined);
}

/** What the admin API filters jobs by; every field narrows. */
export interface JobFilter {
  tenantId?: string;
  kind?: string;
  state?: JobState;
  /** Created at or after. */
  createdFrom?: Date;
  /** Created before. */
  createdTo?: Date;
  id?: string;
  idempotencyKey?: string;
  businessKey?: string;
}

/** Keyset position: the last row of the page before. */
export type JobCursor = Pick<JobRow, 'createdAt' | 'kind' | 'id'>;

function conditionsOf(filter: JobFilter): SQL | undefined {
  const conditions: SQL[] = [];
  if (filter.tenantId !== undefined) conditions.push(eq(jobs.tenantId, filter.tenantId));
  if (filter.kind !== undefined) conditions.push(eq(jobs.kind, filter.kind));
  if (filter.state !== undefined) conditions.push(eq(jobs.state, filter.state));
  if (filter.createdFrom !== undefined) conditions.push(gte(jobs.createdAt, filter.createdFrom));
  if (filter.createdTo !== undefined) conditions.push(lt(jobs.createdAt, filter.createdTo));
  if (filter.id !== undefined) conditions.push(eq(jobs.id, filter.id));
  if (filter.idempotencyKey !== undefined) conditions.push(eq(jobs.idempotencyKey, filter.idempotencyKey));
  if (filter.businessKey !== undefined) conditions.push(eq(jobs.businessKey, filter.businessKey));
  return conditions.length === 0 ? undefined : and(...conditions);
}

/** A job acted on. */
export interface JobRef {
  kind: string;
  id: string;
}

/** What an admin action changed in Postgres: the jobs' new state, and its audit entry. */
export interface AdminJobChange {
  jobs: readonly JobRef[];
  state: JobState;
  audit: AdminAuditEntry;
}

/**
 * The states a row may be in for an action's state to replace it. The action was done in Redis
 * first, so a worker may already have written what came next (a retried job running, or done):
 * that row is newer than the action and stays. A cancelled job cannot run again; its row may say
 * active when its run stalled.
 */
const STATES_BEFORE: Partial<Record<JobState, readonly JobState[]>> = {
  waiting: ['failed', 'delayed'],
  cancelled: ['waiting', 'delayed', 'active'],
};

// The sync_status rows an action moves along with their job: a cancelled job's entity is cancelled,
// a retried one's pending again. Only rows still naming the job, in the states it leaves.
const SYNC_STATUS_AFTER: Partial<Record<JobState, { status: 'cancelled' | 'pending'; from: readonly string[] }>> = {
  cancelled: { status: 'cancelled', from: ['pending', 'waiting'] },
  waiting: { status: 'pending', from: ['failed'] },
};

export const jobRepository = {
  /** Newest first, `limit` rows after `cursor`. */
  async list(db: Db, filter: JobFilter, page: { limit: number; cursor?: JobCursor }): Promise<JobRow[]> {
    const after = page.cursor && sql`(${jobs.createdAt}, ${jobs.kind}, ${jobs.id}) < (${page.cursor.createdAt.toISOString()}::timestamptz, ${page.cursor.kind}, ${page.cursor.id})`;
    return db
      .select()
      .from(jobs)
      .where(and(conditionsOf(filter), after))
      .orderBy(desc(jobs.createdAt), desc(jobs.kind), desc(jobs.id))
      .limit(page.limit);
  },

  async count(db: Db, filter: JobFilter): Promise<number> {
    const [row] = await db.select({ n: count() }).from(jobs).where(conditionsOf(filter));
    return row?.n ?? 0;
  },

  async get(db: Db, kind: string, id: string): Promise<JobRow | undefined> {
    const [row] = await db
      .select()
      .from(jobs)
      .where(and(eq(jobs.kind, kind), eq(jobs.id, id)))
      .limit(1);
    return row;
  },

  /** A job's runs, first to last. */
  attempts(db: Db, kind: string, id: string): Promise<JobAttemptRow[]> {
    return db
      .select()
      .from(jobAttempts)
      .where(and(eq(jobAttempts.kind, kind), eq(jobAttempts.jobId, id)))
      .orderBy(asc(jobAttempts.run));
  },

  /**
   * Sets the jobs' state (where no worker wrote a newer one) and their entities' sync status, and
   * appends the audit entry, in one transaction.
   */
  async recordAdminAction(db: Db, change: AdminJobChange): Promise<void> {
    const byKind = new Map<string, string[]>();
    for (const job of change.jobs) byKind.set(job.kind, [...(byKind.get(job.kind) ?? []), job.id]);
    const before = STATES_BEFORE[change.state] ?? [];
    const sync = SYNC_STATUS_AFTER[change.state];
    // It may deadlock with a worker's history write of the same rows: tried again.
    await retryLostRaces(() =>
      db.transaction(async (tx) => {
        for (const [kind, ids] of byKind) {
          await tx
            .update(jobs)
            .set({ state: change.state, updatedAt: new Date() })
            .where(and(eq(jobs.kind, kind), inArray(jobs.id, ids), inArray(jobs.state, [...before])));
          if (sync !== undefined) {
            await tx
              .update(syncStatus)
              .set({ status: sync.status, updatedAt: new Date() })
              .where(and(inArray(syncStatus.jobId, ids), inArray(syncStatus.status, [...sync.from] as (typeof syncStatus.status._.data)[])));
          }
        }
        await adminAuditRepository.append(tx, [change.audit]);
      }),
    );
  },

};
