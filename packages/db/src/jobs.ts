import { and, asc, count, desc, eq, gte, inArray, lt, sql, type SQL } from 'drizzle-orm';
import { adminAuditRepository, type AdminAuditEntry } from './admin-audit';
import { executePrepared, inKeyOrder, jsonRows } from './bulk-sql';
import { retryLostRaces } from './postgres-errors';
import type { Db } from './client';
import { jobAttempts, jobs, syncStatus, type JobState } from './schema';
import { jobIdentityRow, jobKey, writeAttempt, type AttemptEvent, type JobIdentity, type StatementGuard } from './worker-rows';

export type JobRow = typeof jobs.$inferSelect;
export type JobAttemptRow = typeof jobAttempts.$inferSelect;
export type { AttemptEvent, JobIdentity } from './worker-rows';

/**
 * The accepted jobs' rows (state waiting), in one statement. A row of the same job that a worker
 * already wrote (it may start before this commits) is left alone; a row of an older job under the
 * same id (a reused idempotency key) starts over.
 */
export async function recordAcceptedJobs(db: Db, unordered: readonly JobIdentity[]): Promise<void> {
  if (unordered.length === 0) return;
  // In key order: a worker's statement may write the same jobs' rows (it can start a job before this lands).
  const accepted = inKeyOrder(unordered, jobKey);
  await executePrepared(db, sql`
    insert into ${jobs} as current (kind, id, tenant_id, business_key, idempotency_key, state, attempts, created_at, updated_at)
    select kind, id, tenant_id, business_key, idempotency_key, 'waiting', 0, created_at, now()
    from json_to_recordset(${jsonRows(accepted.map(jobIdentityRow))}) as row (kind text, id text, tenant_id text, business_key text, idempotency_key text, created_at timestamptz)
    on conflict (kind, id) do update set tenant_id = excluded.tenant_id, business_key = excluded.business_key,
      idempotency_key = excluded.idempotency_key, state = 'waiting', attempts = 0, last_error = null,
      created_at = excluded.created_at, updated_at = excluded.updated_at
    where current.created_at < excluded.created_at
  `);
}

/**
 * Records a run's start or end. The events of every job running at once share one statement with
 * the status rows of that moment (worker-rows.ts), through `guard` once per statement; a job's events never share one, so they land in order.
 */
export const recordAttempt = (db: Db, event: AttemptEvent, guard?: StatementGuard): Promise<void> => writeAttempt(db, event, guard);

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
