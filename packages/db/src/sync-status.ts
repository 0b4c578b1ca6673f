import { and, asc, eq, gt } from 'drizzle-orm';
import type { StoredError } from '@jobfleet/contracts';
import { executePrepared } from './bulk-sql';
import type { Db } from './client';
import { syncStatus } from './schema';
import { rowKey, statusUpsert, writeStatus, type StatementGuard, type StatusWrite, type SyncEntity } from './worker-rows';

export type SyncStatusRow = typeof syncStatus.$inferSelect;
export type { SyncEntity } from './worker-rows';

type Transition = Omit<StatusWrite, 'entity' | 'at'>;

/** Goes out with the other rows of the jobs running at once (worker-rows.ts), through `guard` once per statement; resolves once durable. */
const write = (db: Db, entity: SyncEntity, transition: Transition, guard: StatementGuard | undefined): Promise<boolean> =>
  writeStatus(db, { entity, ...transition, at: new Date() }, guard);

/** An accepted job's row: waiting for its first attempt. */
const ENQUEUED: Transition = { status: 'pending', attempts: 0, lastError: null, externalRef: null };

/** Each returns false when a newer version already owns the row (the write was skipped). `guard`: see StatementGuard. */
export const syncStatusRepository = {
  recordEnqueued: (db: Db, entity: SyncEntity) => write(db, entity, ENQUEUED, undefined),
  /** The row's last error stays while the job runs again. */
  recordRunning: (db: Db, entity: SyncEntity, attempt: number, guard?: StatementGuard) =>
    write(db, entity, { status: 'running', attempts: attempt, lastError: null, externalRef: null }, guard),
  recordSynced: (db: Db, entity: SyncEntity, attempt: number, externalRef: string, guard?: StatementGuard) =>
    write(db, entity, { status: 'synced', attempts: attempt, lastError: null, externalRef }, guard),
  /** A dependency is known to be unavailable (open breaker, lost WSAA ticket): the job waits, no attempt spent; `lastError` says which. */
  recordWaiting: (db: Db, entity: SyncEntity, attempt: number, error: StoredError, guard?: StatementGuard) =>
    write(db, entity, { status: 'waiting', attempts: attempt - 1, lastError: error, externalRef: null }, guard),
  /** `final`: no attempt is left, the row ends `failed`; otherwise it waits for the retry as `pending`. */
  recordFailure: (db: Db, entity: SyncEntity, attempt: number, error: StoredError, final: boolean, guard?: StatementGuard) =>
    write(db, entity, { status: final ? 'failed' : 'pending', attempts: attempt, lastError: error, externalRef: null }, guard),

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
 * recordEnqueued for many jobs in one statement: the worker rows' upsert, so with its rules (a
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
  await executePrepared(db, statusUpsert([...last.values()].map((entity) => ({ entity, ...ENQUEUED, at }))));
}
