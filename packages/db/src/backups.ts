import { randomUUID } from 'node:crypto';
import { and, desc, eq, lt, or, sql } from 'drizzle-orm';
import type { Db } from './client';
import { backups } from './schema';

export type BackupRow = typeof backups.$inferSelect;

export const backupRepository = {
  /**
   * Records the start of a run. A scheduled run is unique per (schedule, slot): a second start of
   * the same slot (two schedulers fired, or a retry) gets the existing row back and `created: false`
   * unless that run failed, in which case it is restarted.
   */
  async start(
    db: Db,
    input: { schedule: string; slot: Date | null; target: string; jobId: string; tenantId?: string },
  ): Promise<{ row: BackupRow; created: boolean }> {
    const now = new Date();
    const values = { id: randomUUID(), status: 'running' as const, startedAt: now, ...input, tenantId: input.tenantId ?? null };
    if (input.slot === null) {
      const rows = await db.insert(backups).values(values).returning();
      const row = rows[0];
      if (!row) throw new Error('backup row not inserted');
      return { row, created: true };
    }
    const inserted = await db
      .insert(backups)
      .values(values)
      .onConflictDoUpdate({
        target: [backups.schedule, backups.slot],
        set: { status: 'running', jobId: input.jobId, error: null, startedAt: now, finishedAt: null },
        // Only a failed run of the slot may run again; a running or finished one stands.
        setWhere: sql`${backups.status} = 'failed'`,
      })
      .returning();
    if (inserted[0]) return { row: inserted[0], created: true };
    const existing = await db
      .select()
      .from(backups)
      .where(and(eq(backups.schedule, input.schedule), eq(backups.slot, input.slot)))
      .limit(1);
    if (!existing[0]) throw new Error(`backup slot ${input.schedule}@${input.slot.toISOString()} vanished`);
    return { row: existing[0], created: false };
  },

  async succeed(db: Db, id: string, result: { location: string; bytes: number; sha256: string; restoreCheck: unknown }): Promise<void> {
    await db
      .update(backups)
      .set({ status: 'succeeded', ...result, finishedAt: new Date() })
      .where(eq(backups.id, id));
  },

  async fail(db: Db, id: string, error: unknown): Promise<void> {
    await db.update(backups).set({ status: 'failed', error, finishedAt: new Date() }).where(eq(backups.id, id));
  },

  async markPruned(db: Db, schedule: string, locations: readonly string[]): Promise<number> {
    if (locations.length === 0) return 0;
    const rows = await db
      .update(backups)
      .set({ status: 'pruned' })
      .where(and(eq(backups.schedule, schedule), sql`${backups.location} in ${locations}`))
      .returning({ id: backups.id });
    return rows.length;
  },

  async get(db: Db, id: string): Promise<BackupRow | undefined> {
    const rows = await db.select().from(backups).where(eq(backups.id, id)).limit(1);
    return rows[0];
  },

  /** Newest first; `cursor` is the last row of the previous page (keyset pagination). */
  async list(db: Db, options: { limit: number; cursor?: { startedAt: Date; id: string } }): Promise<BackupRow[]> {
    const { cursor } = options;
    return db
      .select()
      .from(backups)
      .where(
        cursor === undefined
          ? undefined
          : or(lt(backups.startedAt, cursor.startedAt), and(eq(backups.startedAt, cursor.startedAt), lt(backups.id, cursor.id))),
      )
      .orderBy(desc(backups.startedAt), desc(backups.id))
      .limit(options.limit);
  },
};
