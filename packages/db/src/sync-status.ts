import { and, asc, eq, gt, sql } from 'drizzle-orm';
import type { StoredError } from '@jobfleet/contracts';
import { arrayParam, sortedByKey, type ArrayType } from './bulk-sql';
import type { Db } from './client';
import { createGroupCommit, type GroupCommit } from '@jobfleet/group-commit';
import { syncStatus, type SyncStatusValue } from './schema';

export type SyncStatusRow = typeof syncStatus.$inferSelect;

export interface SyncEntity {
  tenantId: string;
  kind: string;
  entityId: string;
  /** Payload version; a write never lowers the stored version (out-of-order jobs). */
  version: number;
  jobId: string;
}

interface Transition {
  status: SyncStatusValue;
  attempts?: number;
  lastError?: StoredError | null;
  externalRef?: string;
  synced?: boolean;
}

interface StatusWrite {
  entity: SyncEntity;
  transition: Transition;
  at: Date;
}

const rowKey = (e: Pick<SyncEntity, 'tenantId' | 'kind' | 'entityId'>) => JSON.stringify([e.tenantId, e.kind, e.entityId]);
// Writes that set the same columns share one statement.
const shapeOf = ({ transition: t }: StatusWrite) =>
  [t.status, t.attempts !== undefined, t.lastError !== undefined, t.externalRef !== undefined, t.synced === true].join('|');

/**
 * One upsert for writes of one shape; the keys of the rows it wrote. Each column travels as one
 * array parameter (bulk-sql.ts): the statement's text is the same for every flush of a shape, so
 * building it costs next to nothing per row, which matters at thousands of jobs a second.
 */
async function upsert(db: Db, unordered: readonly StatusWrite[]): Promise<Set<string>> {
  // In key order, so that two statements writing the same rows lock them in one order and never deadlock.
  const writes = sortedByKey(unordered, (write) => rowKey(write.entity));
  const [{ transition: t }] = writes as [StatusWrite];
  const set = [sql`status = excluded.status, version = excluded.version, job_id = excluded.job_id, updated_at = excluded.updated_at`];
  if (t.attempts !== undefined) set.push(sql`attempts = excluded.attempts`);
  if (t.lastError !== undefined) set.push(sql`last_error = excluded.last_error`);
  if (t.externalRef !== undefined) set.push(sql`external_ref = excluded.external_ref`);
  if (t.synced) set.push(sql`last_synced_at = excluded.last_synced_at`);
  const column = (value: (write: StatusWrite) => string | number | null, type: ArrayType) => arrayParam(writes.map(value), type);
  const at = (write: StatusWrite) => write.at.toISOString();
  // A job for an older version must not overwrite what a newer one recorded, and `synced` is
  // final for its version: a late write of the same version (an enqueue retried after its job
  // ran, an attempt that lost its lock to the run that succeeded) must not undo it.
  const result = (await db.execute(sql`
    insert into ${syncStatus} as current (tenant_id, kind, entity_id, version, job_id, status, attempts, last_error, external_ref, last_synced_at, updated_at)
    select tenant_id, kind, entity_id, version, job_id, ${t.status}, attempts, last_error::jsonb, external_ref, last_synced_at, updated_at
    from unnest(${column((w) => w.entity.tenantId, 'text')}, ${column((w) => w.entity.kind, 'text')}, ${column((w) => w.entity.entityId, 'text')},
      ${column((w) => w.entity.version, 'bigint')}, ${column((w) => w.entity.jobId, 'text')}, ${column((w) => w.transition.attempts ?? 0, 'integer')},
      ${column((w) => (w.transition.lastError ? JSON.stringify(w.transition.lastError) : null), 'text')}, ${column((w) => w.transition.externalRef ?? null, 'text')},
      ${column((w) => (w.transition.synced ? at(w) : null), 'timestamptz')}, ${column(at, 'timestamptz')})
      as row (tenant_id, kind, entity_id, version, job_id, attempts, last_error, external_ref, last_synced_at, updated_at)
    on conflict (tenant_id, kind, entity_id) do update set ${sql.join(set, sql`, `)}
    where current.version < excluded.version or (current.version = excluded.version and (current.status <> 'synced' or excluded.status = 'synced'))
    returning tenant_id as "tenantId", kind, entity_id as "entityId"
  `)) as { rows: Pick<SyncEntity, 'tenantId' | 'kind' | 'entityId'>[] };
  return new Set(result.rows.map(rowKey));
}

// Sized so one statement stays far below Postgres' 65,535 bind parameters (11 per row).
const MAX_ROWS_PER_FLUSH = 500;
const writers = new WeakMap<Db, GroupCommit<StatusWrite, boolean>>();

/**
 * The status writes of one database handle go out by group commit: the writes of every job
 * running at once share a statement per shape (one per tick under load, one per write when idle).
 * Each caller still waits until its own row is durable.
 */
function writerOf(db: Db): GroupCommit<StatusWrite, boolean> {
  let writer = writers.get(db);
  if (writer === undefined) {
    writer = createGroupCommit<StatusWrite, boolean>({
      maxBatch: MAX_ROWS_PER_FLUSH,
      conflictKey: (write) => rowKey(write.entity),
      async flush(writes) {
        const shapes = new Map<string, StatusWrite[]>();
        for (const write of writes) shapes.set(shapeOf(write), [...(shapes.get(shapeOf(write)) ?? []), write]);
        const written = await Promise.all([...shapes.values()].map((group) => upsert(db, group)));
        return writes.map((write) => written.some((keys) => keys.has(rowKey(write.entity))));
      },
    });
    writers.set(db, writer);
  }
  return writer;
}

function write(db: Db, entity: SyncEntity, transition: Transition): Promise<boolean> {
  return writerOf(db).submit({ entity, transition, at: new Date() });
}

/** An accepted job's row: waiting for its first attempt. */
const ENQUEUED: Transition = { status: 'pending', attempts: 0, lastError: null };

/** Each returns false when a newer version already owns the row (the write was skipped). */
export const syncStatusRepository = {
  recordEnqueued: (db: Db, entity: SyncEntity) => write(db, entity, ENQUEUED),
  recordRunning: (db: Db, entity: SyncEntity, attempt: number) => write(db, entity, { status: 'running', attempts: attempt }),
  recordSynced: (db: Db, entity: SyncEntity, attempt: number, externalRef: string) =>
    write(db, entity, { status: 'synced', attempts: attempt, lastError: null, externalRef, synced: true }),
  /** A dependency is known to be unavailable (open breaker, lost WSAA ticket): the job waits, no attempt spent; `lastError` says which. */
  recordWaiting: (db: Db, entity: SyncEntity, attempt: number, error: StoredError) =>
    write(db, entity, { status: 'waiting', attempts: attempt - 1, lastError: error }),
  /** `final`: no attempt is left, the row ends `failed`; otherwise it waits for the retry as `pending`. */
  recordFailure: (db: Db, entity: SyncEntity, attempt: number, error: StoredError, final: boolean) =>
    write(db, entity, { status: final ? 'failed' : 'pending', attempts: attempt, lastError: error }),

  async get(db: Db, tenantId: string, kind: string, entityId: string): Promise<SyncStatusRow | undefined> {
    const rows = await db
      .select()
      .from(syncStatus)
      .where(and(eq(syncStatus.tenantId, tenantId), eq(syncStatus.kind, kind), eq(syncStatus.entityId, entityId)))
      .limit(1);
    return rows[0];
  },

  /** A tenant's rows of one kind in entity id order, after `afterEntityId` (keyset pagination over the primary key). */
  list(db: Db, options: { tenantId: string; kind: string; afterEntityId?: string; limit: number }): Promise<SyncStatusRow[]> {
    const { tenantId, kind, afterEntityId, limit } = options;
    return db
      .select()
      .from(syncStatus)
      .where(and(eq(syncStatus.tenantId, tenantId), eq(syncStatus.kind, kind), afterEntityId === undefined ? undefined : gt(syncStatus.entityId, afterEntityId)))
      .orderBy(asc(syncStatus.entityId))
      .limit(limit);
  },
};

/**
 * recordEnqueued for many jobs in one statement: the group commit's upsert, so with its rules (a
 * row never goes back to an older version, and `synced` stays for its version). One statement cannot write a row twice, so of the
 * jobs of one entity only the one that a series of single writes would leave in the row is
 * written: the highest version, and of equal versions the last.
 */
export async function recordEnqueuedMany(db: Db, entities: readonly SyncEntity[]): Promise<void> {
  const last = new Map<string, SyncEntity>();
  for (const entity of entities) {
    const before = last.get(rowKey(entity));
    if (before === undefined || entity.version >= before.version) last.set(rowKey(entity), entity);
  }
  if (last.size === 0) return;
  const at = new Date();
  await upsert(db, [...last.values()].map((entity) => ({ entity, transition: ENQUEUED, at })));
}
