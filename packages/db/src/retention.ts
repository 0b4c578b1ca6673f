import { sql, type SQL } from 'drizzle-orm';
import type { RetentionPolicy } from '@jobfleet/config';
import type { Keyring } from '@jobfleet/secrets';
import { rowsOf, type Db } from './client';
import { DEPRECATED_USAGE_DAYS } from './deprecated-usage';
import { dropLockAuditMonthsBefore, ensureLockAuditPartitions, type DroppedMonth } from './lock-audit-partitions';

export interface RetentionReport {
  idempotencyKeys: number;
  syncStatus: number;
  jobs: number;
  adminAudit: number;
  /** Counts of calls to deprecated routes older than DEPRECATED_USAGE_DAYS. */
  deprecatedUsage: number;
  lockAuditPartitionsCreated: string[];
  lockAuditMonthsDropped: DroppedMonth[];
}

/**
 * Runs `batch` (a statement deleting at most `batchSize` rows and selecting how many as `count`)
 * until a batch comes back short, each batch its own transaction, so no long transaction holds
 * locks or keeps vacuum back. `prepare` runs first in each batch's transaction (admin_audit's
 * trigger lets only a retention transaction delete).
 */
async function inBatches(db: Db, batch: SQL, batchSize: number, prepare?: SQL): Promise<number> {
  let deleted = 0;
  for (;;) {
    const count = await db.transaction(async (tx) => {
      if (prepare) await tx.execute(prepare);
      const [result] = await rowsOf<{ count: number }>(tx, batch);
      return result?.count ?? 0;
    });
    deleted += count;
    if (count < batchSize) return deleted;
  }
}

/** Deletes the rows `where` selects from `table`, `batchSize` at a time. */
function deleteInBatches(db: Db, table: SQL, where: SQL, batchSize: number, prepare?: SQL): Promise<number> {
  return inBatches(
    db,
    sql`with doomed as (select ctid from ${table} where ${where} limit ${batchSize}),
        gone as (delete from ${table} where ctid in (select ctid from doomed) returning 1)
        select count(*)::int as count from gone`,
    batchSize,
    prepare,
  );
}

/** Finished jobs created before `before`, each with its attempt history, `batchSize` jobs at a time. */
function pruneJobHistory(db: Db, before: Date, batchSize: number): Promise<number> {
  return inBatches(
    db,
    sql`with doomed as (
          select kind, id from jobs where state in ('completed', 'failed', 'cancelled') and created_at < ${before} limit ${batchSize}),
        runs as (delete from job_attempts a using doomed d where a.kind = d.kind and a.job_id = d.id),
        gone as (delete from jobs j using doomed d where j.kind = d.kind and j.id = d.id returning 1)
        select count(*)::int as count from gone`,
    batchSize,
  );
}

/** Expired Idempotency-Key records, in batches. */
export function pruneExpiredIdempotencyKeys(db: Db, now: Date, batchSize: number): Promise<number> {
  return deleteInBatches(db, sql`idempotency_keys`, sql`expires_at <= ${now}`, batchSize);
}

/**
 * One pass of every retention rule. Safe to run in several processes at once: batch deletes of
 * the same rows do not conflict, and lock_audit months are dropped under an advisory lock.
 *
 * A finished entity's sync_status row can go: its effect carries its own version (Calendar events
 * hold it in extended properties; AFIP invoices live in afip_invoices), so a late older job still
 * cannot overwrite a newer effect, and a newer job recreates the row.
 */
export async function runRetention(db: Db, policy: RetentionPolicy, options: { keyring: Keyring; now: Date }): Promise<RetentionReport> {
  const { now, keyring } = options;
  const daysAgo = (days: number) => new Date(now.getTime() - days * 86_400_000);
  const idempotencyKeys = await pruneExpiredIdempotencyKeys(db, now, policy.batchSize);
  const syncStatus = await deleteInBatches(
    db,
    sql`sync_status`,
    sql`status in ('synced', 'failed', 'cancelled') and updated_at < ${daysAgo(policy.syncStatusDays)}`,
    policy.batchSize,
  );
  const jobs = await pruneJobHistory(db, daysAgo(policy.jobHistoryDays), policy.batchSize);
  const adminAudit = await deleteInBatches(
    db,
    sql`admin_audit`,
    sql`at < ${daysAgo(policy.adminAuditDays)}`,
    policy.batchSize,
    sql`select set_config('jobfleet.retention', 'on', true)`,
  );
  const deprecatedUsage = await deleteInBatches(db, sql`api_deprecated_usage`, sql`day < ${daysAgo(DEPRECATED_USAGE_DAYS).toISOString().slice(0, 10)}::date`, policy.batchSize);
  const lockAuditPartitionsCreated = await ensureLockAuditPartitions(db, { now, monthsAhead: policy.lockAuditMonthsAhead });
  const cut = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - policy.lockAuditMonths, 1));
  const lockAuditMonthsDropped = await dropLockAuditMonthsBefore(db, { before: cut, keyring });
  return { idempotencyKeys, syncStatus, jobs, adminAudit, deprecatedUsage, lockAuditPartitionsCreated, lockAuditMonthsDropped };
}
