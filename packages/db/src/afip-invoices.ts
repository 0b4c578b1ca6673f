import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import type { Db } from './client';
import { afipInvoices } from './schema';

export type AfipInvoiceRow = typeof afipInvoices.$inferSelect;

export interface VoucherKey {
  cuit: number;
  ptoVta: number;
  cbteTipo: number;
}

/**
 * The invoice rows of the afip-sync job. Every write here happens while the caller holds the
 * fleet-wide lock of the voucher key, so reading "the row of this idempotency key" and then
 * reserving a number cannot race another worker; the unique indexes are the backstop.
 */
export const afipInvoiceRepository = {
  async findByIdempotencyKey(db: Db, tenantId: string, idempotencyKey: string): Promise<AfipInvoiceRow | undefined> {
    const rows = await db
      .select()
      .from(afipInvoices)
      .where(and(eq(afipInvoices.tenantId, tenantId), eq(afipInvoices.idempotencyKey, idempotencyKey)))
      .limit(1);
    return rows[0];
  },

  /** Records that `cbteNro` is about to be requested for this invoice (before calling AFIP). */
  async reserve(
    db: Db,
    input: VoucherKey & { tenantId: string; idempotencyKey: string; jobId: string; cbteNro: number; request: unknown },
  ): Promise<AfipInvoiceRow> {
    const now = new Date();
    const values = { id: randomUUID(), status: 'reserved' as const, ...input, createdAt: now, updatedAt: now };
    const rows = await db
      .insert(afipInvoices)
      .values(values)
      // An earlier attempt of the same invoice that AFIP does not have is reused with the new number.
      .onConflictDoUpdate({
        target: [afipInvoices.tenantId, afipInvoices.idempotencyKey],
        set: { status: 'reserved', cbteNro: input.cbteNro, jobId: input.jobId, request: input.request, response: null, updatedAt: now },
        setWhere: sql`${afipInvoices.status} <> 'authorized'`,
      })
      .returning();
    const row = rows[0];
    if (!row) throw new Error(`invoice ${input.idempotencyKey} is already authorized`);
    return row;
  },

  /**
   * Frees reservations of this voucher key from `fromNumber` on, made by runs that died before AFIP
   * took their number (the caller checked AFIP's last authorised number under the lock).
   */
  async releaseDeadReservations(db: Db, key: VoucherKey, fromNumber: number): Promise<number> {
    const rows = await db
      .update(afipInvoices)
      .set({ status: 'released', updatedAt: new Date() })
      .where(
        and(
          eq(afipInvoices.cuit, key.cuit),
          eq(afipInvoices.ptoVta, key.ptoVta),
          eq(afipInvoices.cbteTipo, key.cbteTipo),
          eq(afipInvoices.status, 'reserved'),
          sql`${afipInvoices.cbteNro} >= ${fromNumber}`,
        ),
      )
      .returning({ id: afipInvoices.id });
    return rows.length;
  },

  async markAuthorized(db: Db, id: string, result: { cbteNro: number; cae: string; caeDueDate: string; response: unknown }): Promise<void> {
    await db
      .update(afipInvoices)
      .set({ status: 'authorized', cbteNro: result.cbteNro, cae: result.cae, caeDueDate: result.caeDueDate, response: result.response, updatedAt: new Date() })
      .where(eq(afipInvoices.id, id));
  },

  /** AFIP refused the voucher: the number stays free for the next invoice (partial unique index). */
  async markRejected(db: Db, id: string, response: unknown): Promise<void> {
    await db.update(afipInvoices).set({ status: 'rejected', response, updatedAt: new Date() }).where(eq(afipInvoices.id, id));
  },

  async listNumbers(db: Db, key: VoucherKey): Promise<{ cbteNro: number; status: string }[]> {
    return db
      .select({ cbteNro: afipInvoices.cbteNro, status: afipInvoices.status })
      .from(afipInvoices)
      .where(and(eq(afipInvoices.cuit, key.cuit), eq(afipInvoices.ptoVta, key.ptoVta), eq(afipInvoices.cbteTipo, key.cbteTipo)))
      .orderBy(afipInvoices.cbteNro);
  },
};
