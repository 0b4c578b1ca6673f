import { randomUUID } from 'node:crypto';
import { JobfleetError } from '@jobfleet/contracts';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { arrayParam, columnName } from './bulk-sql';
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
async function advanceFence(tx: Tx, key: VoucherKey, fencingToken: number, lastCbteNro?: number | null): Promise<void> {
  // undefined keeps the known last number; null forgets it (FECompUltimoAutorizado is asked next).
  const last = lastCbteNro === undefined ? {} : { lastCbteNro };
  const rows = await tx
    .insert(afipVoucherFences)
    .values({ ...key, fencingToken, ...last })
    .onConflictDoUpdate({
      target: [afipVoucherFences.tenantId, afipVoucherFences.cuit, afipVoucherFences.ptoVta, afipVoucherFences.cbteTipo],
      set: { fencingToken, ...last, updatedAt: new Date() },
      setWhere: sql`${afipVoucherFences.fencingToken} <= ${fencingToken}`,
    })
    .returning({ fencingToken: afipVoucherFences.fencingToken });
  if (rows.length === 0) throw new FencedOutError(key, fencingToken);
}

/** Runs `write` only while `fencingToken` is the newest of its series, in one transaction. */
function fenced<T>(db: Db, key: VoucherKey, fencingToken: number, write: (tx: Tx) => Promise<T>, lastCbteNro?: number | null): Promise<T> {
  return db.transaction(async (tx) => {
    await advanceFence(tx, key, fencingToken, lastCbteNro);
    return write(tx);
  });
}

/** One invoice of a lot about to be requested: its number is recorded before AFIP is called. */
export interface LotReservation {
  idempotencyKey: string;
  jobId: string;
  cbteNro: number;
  request: unknown;
}

/** What one FECAESolicitar (or a recovery with FECompConsultar) settled, written in one transaction. */
export interface LotSettlement {
  authorized: { id: string; cbteNro: number; cae: string; caeDueDate: string; response: unknown }[];
  /** AFIP refused these vouchers: their numbers stay free for the next invoices. */
  rejected: { id: string; response: unknown }[];
  /** Reservations AFIP never took (unevaluated after a rejection, or lost with a dead holder). */
  released: string[];
  /** The series' last authorised number now; null: unknown (ask FECompUltimoAutorizado); omitted: unchanged. */
  lastCbteNro?: number | null;
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

  async findByIdempotencyKeys(db: Db, tenantId: string, idempotencyKeys: readonly string[]): Promise<AfipInvoiceRow[]> {
    if (idempotencyKeys.length === 0) return [];
    return db
      .select()
      .from(afipInvoices)
      .where(and(eq(afipInvoices.tenantId, tenantId), inArray(afipInvoices.idempotencyKey, [...idempotencyKeys])));
  },

  /**
   * What the fleet knows of a series before numbering: its last authorised number (null when never
   * learnt) and the reservations still open. Open reservations at this point belong to a holder
   * that died or was fenced out between recording its lot and settling it: AFIP may have them.
   */
  async seriesState(db: Db, key: VoucherKey): Promise<{ lastCbteNro: number | null; reserved: AfipInvoiceRow[] }> {
    const [fence, reserved] = await Promise.all([
      db
        .select({ lastCbteNro: afipVoucherFences.lastCbteNro })
        .from(afipVoucherFences)
        .where(
          and(
            eq(afipVoucherFences.tenantId, key.tenantId),
            eq(afipVoucherFences.cuit, key.cuit),
            eq(afipVoucherFences.ptoVta, key.ptoVta),
            eq(afipVoucherFences.cbteTipo, key.cbteTipo),
          ),
        ),
      db.select().from(afipInvoices).where(and(seriesOf(key), eq(afipInvoices.status, 'reserved'))).orderBy(afipInvoices.cbteNro),
    ]);
    return { lastCbteNro: fence[0]?.lastCbteNro ?? null, reserved };
  },

  /**
   * Records the numbers of a lot about to be requested, in one statement, before AFIP is called:
   * a holder that dies while the request is out leaves them for the next holder to look up.
   */
  async reserveLot(db: Db, key: VoucherKey, fencingToken: number, lot: readonly LotReservation[]): Promise<AfipInvoiceRow[]> {
    const now = new Date();
    const values = lot.map((item) => ({ id: randomUUID(), status: 'reserved' as const, ...key, ...item, createdAt: now, updatedAt: now }));
    const rows = await fenced(db, key, fencingToken, (tx) =>
      tx
        .insert(afipInvoices)
        .values(values)
        // An earlier attempt of the same invoice that AFIP does not have is reused with the new number.
        .onConflictDoUpdate({
          target: [afipInvoices.tenantId, afipInvoices.idempotencyKey],
          set: {
            status: 'reserved',
            cbteNro: sql`excluded.cbte_nro`,
            jobId: sql`excluded.job_id`,
            request: sql`excluded.request`,
            response: null,
            updatedAt: now,
          },
          setWhere: sql`${afipInvoices.status} <> 'authorized'`,
        })
        .returning(),
    );
    const byKey = new Map(rows.map((row) => [row.idempotencyKey, row]));
    return lot.map((item) => {
      const row = byKey.get(item.idempotencyKey);
      if (!row) throw new Error(`invoice ${item.idempotencyKey} is already authorized`);
      return row;
    });
  },

  /** Writes what AFIP answered for a lot (or what a recovery learnt), fenced, in one transaction. */
  async settleLot(db: Db, key: VoucherKey, fencingToken: number, settlement: LotSettlement): Promise<void> {
    const now = new Date();
    await fenced(
      db,
      key,
      fencingToken,
      async (tx) => {
        const { authorized } = settlement;
        if (authorized.length > 0) {
          // One statement for the whole lot (a lot holds up to 250 vouchers).
          const text = (pick: (row: (typeof authorized)[number]) => string) => arrayParam(authorized.map(pick), 'text');
          await tx.execute(sql`
            update ${afipInvoices}
            set ${columnName(afipInvoices.status)} = 'authorized', ${columnName(afipInvoices.cbteNro)} = lot.cbte_nro,
              ${columnName(afipInvoices.cae)} = lot.cae, ${columnName(afipInvoices.caeDueDate)} = lot.cae_due_date,
              ${columnName(afipInvoices.response)} = lot.response::jsonb, ${columnName(afipInvoices.updatedAt)} = ${now.toISOString()}::timestamptz
            from unnest(${text((r) => r.id)}, ${arrayParam(authorized.map((r) => r.cbteNro), 'bigint')}, ${text((r) => r.cae)},
              ${text((r) => r.caeDueDate)}, ${text((r) => JSON.stringify(r.response))}) as lot (id, cbte_nro, cae, cae_due_date, response)
            where ${afipInvoices.id} = lot.id
          `);
        }
        for (const { id, response } of settlement.rejected) {
          await tx.update(afipInvoices).set({ status: 'rejected', response, updatedAt: now }).where(eq(afipInvoices.id, id));
        }
        if (settlement.released.length > 0) {
          await tx
            .update(afipInvoices)
            .set({ status: 'released', updatedAt: now })
            .where(and(inArray(afipInvoices.id, settlement.released), eq(afipInvoices.status, 'reserved')));
        }
      },
      settlement.lastCbteNro,
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
