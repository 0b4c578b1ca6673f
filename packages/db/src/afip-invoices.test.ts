import { and, eq } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { afipInvoiceRepository, FencedOutError, type VoucherKey } from './afip-invoices';
import { afipInvoices, afipVoucherFences } from './schema';

describe('afip invoice writes fenced by the voucher lock’s token', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['t1', 't2'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  const db = () => testDb.database.db;
  let invoices = 0;
  /** A reservation of the next invoice of `key` (its own idempotency key) under `fencingToken`. */
  const reserve = (key: VoucherKey, fencingToken: number, cbteNro = 1, idempotencyKey = `inv-${++invoices}`) =>
    afipInvoiceRepository.reserve(db(), { ...key, idempotencyKey, jobId: `job-${idempotencyKey}`, cbteNro, request: { idempotencyKey }, fencingToken });
  const fenceOf = async (key: VoucherKey) => {
    const rows = await db()
      .select({ fencingToken: afipVoucherFences.fencingToken })
      .from(afipVoucherFences)
      .where(
        and(
          eq(afipVoucherFences.tenantId, key.tenantId),
          eq(afipVoucherFences.cuit, key.cuit),
          eq(afipVoucherFences.ptoVta, key.ptoVta),
          eq(afipVoucherFences.cbteTipo, key.cbteTipo),
        ),
      );
    return rows[0]?.fencingToken;
  };
  const rowOf = async (tenantId: string, idempotencyKey: string) => afipInvoiceRepository.findByIdempotencyKey(db(), tenantId, idempotencyKey);
  const fencedOut = (fencingToken: number) => expect.objectContaining({ name: 'FencedOutError', code: 'LOCK_FENCED_OUT', retryable: true, details: { fencingToken } });

  it('refuses a token older than the series’ newest and accepts that one again and newer ones', async () => {
    const key = { tenantId: 't1', cuit: 30712345671, ptoVta: 1, cbteTipo: 1 };
    await reserve(key, 5, 1, 'fence-5');
    expect(await fenceOf(key)).toBe(5);

    const refused = reserve(key, 4, 2, 'fence-4');
    await expect(refused).rejects.toBeInstanceOf(FencedOutError);
    await expect(refused).rejects.toEqual(fencedOut(4));
    // The refused transaction wrote nothing: no invoice row, the fence unchanged.
    expect(await rowOf('t1', 'fence-4')).toBeUndefined();
    expect(await fenceOf(key)).toBe(5);

    // The holder of the newest token writes as often as it needs to.
    await reserve(key, 5, 2, 'fence-5-again');
    await reserve(key, 6, 3, 'fence-6');
    expect(await fenceOf(key)).toBe(6);
    await expect(reserve(key, 5, 4, 'fence-5-late')).rejects.toEqual(fencedOut(5));
    expect(await afipInvoiceRepository.listNumbers(db(), key)).toEqual([
      { cbteNro: 1, status: 'reserved' },
      { cbteNro: 2, status: 'reserved' },
      { cbteNro: 3, status: 'reserved' },
    ]);
  });

  it('keeps one fence per series: another tenant, CUIT, point of sale or voucher type starts from its own tokens', async () => {
    const key = { tenantId: 't1', cuit: 20111111112, ptoVta: 3, cbteTipo: 6 };
    await reserve(key, 100);
    const others = [
      { ...key, tenantId: 't2' },
      { ...key, cuit: 20222222223 },
      { ...key, ptoVta: 4 },
      { ...key, cbteTipo: 11 },
    ];
    for (const other of others) {
      await expect(reserve(other, 1)).resolves.toMatchObject({ ...other, status: 'reserved' });
      expect(await fenceOf(other)).toBe(1);
    }
    // Their low tokens did not lower the first series' fence.
    expect(await fenceOf(key)).toBe(100);
    await expect(reserve(key, 99, 2)).rejects.toEqual(fencedOut(99));
  });

  it('refuses markAuthorized, markRejected and releaseDeadReservations under an older token, changing no row', async () => {
    const key = { tenantId: 't1', cuit: 30712345671, ptoVta: 2, cbteTipo: 1 };
    const old = await reserve(key, 7, 1, 'settle-old');
    await reserve(key, 8, 2, 'settle-new');
    const before = await db().select().from(afipInvoices).where(eq(afipInvoices.tenantId, 't1'));

    const stale = { id: old.id, key, fencingToken: 7 };
    await expect(afipInvoiceRepository.markAuthorized(db(), stale, { cbteNro: 1, cae: '75123456789012', caeDueDate: '20261210', response: {} })).rejects.toEqual(
      fencedOut(7),
    );
    await expect(afipInvoiceRepository.markRejected(db(), stale, { result: 'R' })).rejects.toEqual(fencedOut(7));
    await expect(afipInvoiceRepository.releaseDeadReservations(db(), key, 1, 7)).rejects.toEqual(fencedOut(7));
    expect(await db().select().from(afipInvoices).where(eq(afipInvoices.tenantId, 't1'))).toEqual(before);
    expect(await rowOf('t1', 'settle-old')).toMatchObject({ status: 'reserved', cae: null, response: null });

    // The current holder settles the same row.
    await afipInvoiceRepository.markAuthorized(db(), { ...stale, fencingToken: 8 }, { cbteNro: 1, cae: '75123456789012', caeDueDate: '20261210', response: {} });
    expect(await rowOf('t1', 'settle-old')).toMatchObject({ status: 'authorized', cae: '75123456789012' });
    expect(await afipInvoiceRepository.releaseDeadReservations(db(), key, 2, 8)).toBe(1);
    expect(await afipInvoiceRepository.listNumbers(db(), key)).toEqual([
      { cbteNro: 1, status: 'authorized' },
      { cbteNro: 2, status: 'released' },
    ]);
  });
});
