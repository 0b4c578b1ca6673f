import { randomUUID } from 'node:crypto';
import { and, desc, eq, isNull, lt, or, sql } from 'drizzle-orm';
import type { StoredError } from '@jobfleet/contracts';
import type { Db } from './client';
import { backups } from './schema';

export type BackupRow = typeof backups.$inferSelect;

/** One attempt at a run: the row and the token its (re)start wrote. */
export type BackupRun = Pick<BackupRow, 'id' | 'runToken'>;

/** The row is still running under this attempt's token (no newer attempt took it over). */
const heldBy = (run: BackupRun) =>
  and(eq(backups.id, run.id), eq(backups.status, 'running'), run.runToken === null ? isNull(backups.runToken) : eq(backups.runToken, run.runToken));

export const backupRepository = {
  /**
   * Records the start of a run. A scheduled run is unique per (schedule, slot): a second start of
   * the same slot (two schedulers fired) gets the existing row back and `created: false`, unless
   * that run failed, or was left running by the same job (its worker died and BullMQ runs the job
   * again; a job id is only ever active once), in which case it is restarted. An on-demand run
   * (no slot) is identified by its job id the same way. Every (re)start writes a new `runToken`,
   * which fences out the attempt it replaced (see `succeed`, `fail`).
   */
  async start(
    db: Db,
    input: { schedule: string; slot: Date | null; target: string; jobId: string; tenantId?: string },
  ): Promise<{ row: BackupRow; created: boolean }> {
    const now = new Date();
    const runToken = randomUUID();
    const values = { id: randomUUID(), status: 'running' as const, startedAt: now, runToken, ...input, tenantId: input.tenantId ?? null };
    const restart = { status: 'running' as const, runToken, error: null, restoreCheck: null, startedAt: now, finishedAt: null };
    if (input.slot === null) {
      // On demand: the job id is the run's identity, so a retry continues the run's row.
      const previous = await db
        .select()
        .from(backups)
        .where(and(eq(backups.schedule, input.schedule), isNull(backups.slot), eq(backups.jobId, input.jobId)))
        .orderBy(desc(backups.startedAt))
        .limit(1);
      const existing = previous[0];
      if (existing && existing.status !== 'failed' && existing.status !== 'running') return { row: existing, created: false };
      const rows = existing
        ? await db
            .update(backups)
            .set(restart)
            .where(eq(backups.id, existing.id))
            .returning()
        : await db.insert(backups).values(values).returning();
      const row = rows[0];
      if (!row) throw new Error('backup row not written');
      return { row, created: true };
    }
    const inserted = await db
      .insert(backups)
      .values(values)
      .onConflictDoUpdate({
        target: [backups.schedule, backups.slot],
        set: { ...restart, jobId: input.jobId },
        // A finished run stands; a running one belongs to another job unless the job ids match.
        setWhere: sql`${backups.status} = 'failed' or (${backups.status} = 'running' and ${backups.jobId} = ${input.jobId})`,
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

  /**
   * Fenced: records where `run` is about to publish its dump, before it does, so an attempt that
   * takes the row over after this one died between publishing and `succeed` finds the file and
   * removes it. False (nothing written) once another attempt restarted the row or it was failed
   * as stalled.
   */
  async recordPublishing(db: Db, run: BackupRun, location: string): Promise<boolean> {
    const rows = await db.update(backups).set({ location }).where(heldBy(run)).returning({ id: backups.id });
    return rows.length > 0;
  },

  /** Fenced: false (and nothing written) when `run` no longer holds its row. */
  async succeed(
    db: Db,
    run: BackupRun,
    result: { location: string; bytes: number; sha256: string; restoreCheck: Record<string, unknown> | null },
  ): Promise<boolean> {
    const rows = await db
      .update(backups)
      .set({ status: 'succeeded', ...result, finishedAt: new Date() })
      .where(heldBy(run))
      .returning({ id: backups.id });
    return rows.length > 0;
  },

  /**
   * Fenced like `succeed`. `restoreCheck`: set when the dump was written but failed its check (the
   * file is removed).
   */
  async fail(db: Db, run: BackupRun, error: StoredError, restoreCheck?: Record<string, unknown>): Promise<boolean> {
    const rows = await db
      .update(backups)
      .set({ status: 'failed', error, finishedAt: new Date(), ...(restoreCheck === undefined ? {} : { restoreCheck }) })
      .where(heldBy(run))
      .returning({ id: backups.id });
    return rows.length > 0;
  },

  /** Tokens of the schedule's runs in progress: their unfinished files must not be swept. */
  async runningTokens(db: Db, schedule: string): Promise<string[]> {
    const rows = await db
      .select({ runToken: backups.runToken })
      .from(backups)
      .where(and(eq(backups.schedule, schedule), eq(backups.status, 'running')));
    return rows.flatMap((r) => (r.runToken === null ? [] : [r.runToken]));
  },

  /** A run whose job failed without finishing it (stalled too often): it must not stay `running`. */
  async failRunningOfJob(db: Db, jobId: string, error: StoredError): Promise<number> {
    const rows = await db
      .update(backups)
      .set({ status: 'failed', error, finishedAt: new Date() })
      .where(and(eq(backups.jobId, jobId), eq(backups.status, 'running')))
      .returning({ id: backups.id });
    return rows.length;
  },

  /** When each schedule last succeeded (pruned runs count: they did succeed), for the overdue alert. */
  async lastSuccessBySchedule(db: Db): Promise<Map<string, { finishedAt: Date; bytes: number | null }>> {
    const rows = await db
      .selectDistinctOn([backups.schedule], { schedule: backups.schedule, finishedAt: backups.finishedAt, bytes: backups.bytes })
      .from(backups)
      .where(sql`${backups.status} in ('succeeded', 'pruned') and ${backups.finishedAt} is not null`)
      .orderBy(backups.schedule, desc(backups.finishedAt));
    return new Map(rows.flatMap((r) => (r.finishedAt === null ? [] : [[r.schedule, { finishedAt: r.finishedAt, bytes: r.bytes }] as const])));
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

  /** The newest backup of a schedule that succeeded and is still kept (what a verify run checks). */
  async latestSucceeded(db: Db, schedule: string): Promise<BackupRow | undefined> {
    const rows = await db
      .select()
      .from(backups)
      .where(and(eq(backups.schedule, schedule), eq(backups.status, 'succeeded')))
      .orderBy(desc(backups.finishedAt))
      .limit(1);
    return rows[0];
  },

  /** The result of a later restore check of a finished backup (it replaces the previous one). */
  async recordRestoreCheck(db: Db, id: string, restoreCheck: Record<string, unknown>): Promise<void> {
    await db.update(backups).set({ restoreCheck }).where(eq(backups.id, id));
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
