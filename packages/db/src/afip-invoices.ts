import { randomUUID } from 'node:crypto';
import { JobfleetError } from '@jobfleet/contracts';
import { and, eq, sql } from 'drizzle-orm';
import type { Db } from './client';
import { afipInvoices, afipVoucherFences } from './schema';

export type AfipInvoiceRow = typeof afipInvoices.$inferSelect;

/** One numbering sequence: a tenant's CUIT, point of sale and voucher type. */
export interface VoucherKey {
  tenantId: string;
  cuit: number;
  ptoVta: number;
  cbteTipo: number;
}

/**
 * A write carried a fencing token older than the newest one recorded for its voucher series: its
 * lock expired (the holder was paused past the TTL) and another holder has moved on. Retryable:
 * the next attempt takes the lock again and reconciles with AFIP before numbering anything.
 */
export class FencedOutError extends JobfleetError {
  readonly code = 'LOCK_FENCED_OUT';
  readonly retryable = true;
  constructor(key: VoucherKey, fencingToken: number) {
    super(`fencing token ${fencingToken} of ${key.cuit}/${key.ptoVta}/${key.cbteTipo} is older than the newest one recorded`, {
      details: { fencingToken },
    });
  }
}

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/**
 * Records `fencingToken` as the newest of the series, or refuses it when a newer one is recorded.
 * The upsert holds the fence row's lock until the transaction ends, so a newer holder's write
 * waits for this one and never interleaves with it.
 */
async function advanceFence(tx: Tx, key: VoucherKey, fencingToken: number): Promise<void> {
  const rows = await tx
    .insert(afipVoucherFences)
    .values({ ...key, fencingToken })
    .onConflictDoUpdate({
      target: [afipVoucherFences.tenantId, afipVoucherFences.cuit, afipVoucherFences.ptoVta, afipVoucherFences.cbteTipo],
      set: { fencingToken, updatedAt: new Date() },
      setWhere: sql`${afipVoucherFences.fencingToken} <= ${fencingToken}`,
    })
    .returning({ fencingToken: afipVoucherFences.fencingToken });
  if (rows.length === 0) throw new FencedOutError(key, fencingToken);
}

/** Runs `write` only while `fencingToken` is the newest of its series, in one transaction. */
function fenced<T>(db: Db, key: VoucherKey, fencingToken: number, write: (tx: Tx) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await advanceFence(tx, key, fencingToken);
    return write(tx);
  });
}

const seriesOf = (key: VoucherKey) =>
  and(eq(afipInvoices.tenantId, key.tenantId), eq(afipInvoices.cuit, key.cuit), eq(afipInvoices.ptoVta, key.ptoVta), eq(afipInvoices.cbteTipo, key.cbteTipo));

/**
 * The invoice rows of the afip-sync job. Every write here happens while the caller holds the
 * fleet-wide lock of the voucher key, so reading "the row of this idempotency key" and then
 * reserving a number cannot race another worker; each write carries the lock's fencing token
 * (refused once a newer holder wrote), and the unique indexes are the last backstop.
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
    input: VoucherKey & { idempotencyKey: string; jobId: string; cbteNro: number; request: unknown; fencingToken: number },
  ): Promise<AfipInvoiceRow> {
    const { fencingToken, ...fields } = input;
    const now = new Date();
    const values = { id: randomUUID(), status: 'reserved' as const, ...fields, createdAt: now, updatedAt: now };
    const rows = await fenced(db, input, fencingToken, (tx) => tx
      .insert(afipInvoices)
      .values(values)
      // An earlier attempt of the same invoice that AFIP does not have is reused with the new number.
      .onConflictDoUpdate({
        target: [afipInvoices.tenantId, afipInvoices.idempotencyKey],
        set: { status: 'reserved', cbteNro: input.cbteNro, jobId: input.jobId, request: input.request, response: null, updatedAt: now },
        setWhere: sql`${afipInvoices.status} <> 'authorized'`,
      })
      .returning());
    const row = rows[0];
    if (!row) throw new Error(`invoice ${input.idempotencyKey} is already authorized`);
    return row;
  },

  /**
   * Frees reservations of this voucher key from `fromNumber` on, made by runs that died before AFIP
   * took their number (the caller checked AFIP's last authorised number under the lock).
   */
  async releaseDeadReservations(db: Db, key: VoucherKey, fromNumber: number, fencingToken: number): Promise<number> {
    const rows = await fenced(db, key, fencingToken, (tx) =>
      tx
        .update(afipInvoices)
        .set({ status: 'released', updatedAt: new Date() })
        .where(and(seriesOf(key), eq(afipInvoices.status, 'reserved'), sql`${afipInvoices.cbteNro} >= ${fromNumber}`))
        .returning({ id: afipInvoices.id }),
    );
    return rows.length;
  },

  async markAuthorized(
    db: Db,
    row: { id: string; key: VoucherKey; fencingToken: number },
    result: { cbteNro: number; cae: string; caeDueDate: string; response: unknown },
  ): Promise<void> {
    await fenced(db, row.key, row.fencingToken, (tx) =>
      tx
        .update(afipInvoices)
        .set({ status: 'authorized', cbteNro: result.cbteNro, cae: result.cae, caeDueDate: result.caeDueDate, response: result.response, updatedAt: new Date() })
        .where(eq(afipInvoices.id, row.id)),
    );
  },

  /** AFIP refused the voucher: the number stays free for the next invoice (partial unique index). */
  async markRejected(db: Db, row: { id: string; key: VoucherKey; fencingToken: number }, response: unknown): Promise<void> {
    await fenced(db, row.key, row.fencingToken, (tx) =>
      tx.update(afipInvoices).set({ status: 'rejected', response, updatedAt: new Date() }).where(eq(afipInvoices.id, row.id)),
    );
  },

  async listNumbers(db: Db, key: VoucherKey): Promise<{ cbteNro: number; status: string }[]> {
    return db
      .select({ cbteNro: afipInvoices.cbteNro, status: afipInvoices.status })
      .from(afipInvoices)
      .where(seriesOf(key))
      .orderBy(afipInvoices.cbteNro);
  },
};
