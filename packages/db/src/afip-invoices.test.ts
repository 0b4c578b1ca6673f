import { eq, sql } from 'drizzle-orm';
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
  const reserve = async (key: VoucherKey, fencingToken: number, cbteNro = 1, idempotencyKey = `inv-${++invoices}`) => {
    const [row] = await afipInvoiceRepository.reserveLot(db(), key, fencingToken, [{ idempotencyKey, jobId: `job-${idempotencyKey}`, cbteNro, request: { idempotencyKey } }]);
    if (!row) throw new Error('no row reserved');
    return row;
  };
  const nothing = { authorized: [], rejected: [], released: [] };
  const authorization = (id: string) => ({ id, cbteNro: 1, cae: '75123456789012', caeDueDate: '20261210', response: {} });
  const fenceOf = async (key: VoucherKey) => {
    const rows = await db()
      .select({ fencingToken: afipVoucherFences.fencingToken })
      .from(afipVoucherFences)
      .where(sql`(${afipVoucherFences.tenantId}, ${afipVoucherFences.cuit}, ${afipVoucherFences.ptoVta}, ${afipVoucherFences.cbteTipo}) = (${key.tenantId}, ${key.cuit}, ${key.ptoVta}, ${key.cbteTipo})`);
    return rows[0]?.fencingToken;
  };
  const rowOf = async (tenantId: string, idempotencyKey: string) => (await afipInvoiceRepository.findByIdempotencyKeys(db(), tenantId, [idempotencyKey]))[0];
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

  it('refuses settleLot under an older token, changing no row and no last number', async () => {
    const key = { tenantId: 't1', cuit: 30712345671, ptoVta: 2, cbteTipo: 1 };
    const old = await reserve(key, 7, 1, 'settle-old');
    const newer = await reserve(key, 8, 2, 'settle-new');
    const before = await db().select().from(afipInvoices).where(eq(afipInvoices.tenantId, 't1'));

    const settle = (fencingToken: number, settlement: Parameters<typeof afipInvoiceRepository.settleLot>[3]) =>
      afipInvoiceRepository.settleLot(db(), key, fencingToken, settlement);
    await expect(settle(7, { ...nothing, authorized: [authorization(old.id)], lastCbteNro: 1 })).rejects.toEqual(fencedOut(7));
    await expect(settle(7, { ...nothing, rejected: [{ id: old.id, response: { result: 'R' } }] })).rejects.toEqual(fencedOut(7));
    await expect(settle(7, { ...nothing, released: [newer.id] })).rejects.toEqual(fencedOut(7));
    expect(await db().select().from(afipInvoices).where(eq(afipInvoices.tenantId, 't1'))).toEqual(before);
    expect(await afipInvoiceRepository.seriesState(db(), key)).toMatchObject({ lastCbteNro: null, reserved: [{ id: old.id }, { id: newer.id }] });

    // The current holder settles both rows in one transaction and records the series' last number.
    await settle(8, { ...nothing, authorized: [authorization(old.id)], released: [newer.id], lastCbteNro: 1 });
    expect(await rowOf('t1', 'settle-old')).toMatchObject({ status: 'authorized', cae: '75123456789012' });
    expect(await afipInvoiceRepository.listNumbers(db(), key)).toEqual([
      { cbteNro: 1, status: 'authorized' },
      { cbteNro: 2, status: 'released' },
    ]);
    expect(await afipInvoiceRepository.seriesState(db(), key)).toEqual({ lastCbteNro: 1, reserved: [] });
    // Omitted keeps the last number, null forgets it (FECompUltimoAutorizado is asked next).
    await settle(8, nothing);
    expect((await afipInvoiceRepository.seriesState(db(), key)).lastCbteNro).toBe(1);
    await settle(8, { ...nothing, lastCbteNro: null });
    expect((await afipInvoiceRepository.seriesState(db(), key)).lastCbteNro).toBeNull();
  });

  it('reserves a lot in one statement, reusing the rows of earlier attempts that AFIP does not have', async () => {
    const key = { tenantId: 't2', cuit: 30712345671, ptoVta: 9, cbteTipo: 6 };
    const lot = (numbers: number[]) =>
      afipInvoiceRepository.reserveLot(
        db(),
        key,
        1,
        numbers.map((cbteNro, i) => ({ idempotencyKey: `lot-${i}`, jobId: `job-${i}`, cbteNro, request: { i } })),
      );
    const first = await lot([1, 2, 3]);
    expect(first.map((r) => [r.idempotencyKey, r.cbteNro, r.status])).toEqual([
      ['lot-0', 1, 'reserved'],
      ['lot-1', 2, 'reserved'],
      ['lot-2', 3, 'reserved'],
    ]);
    // The lot was cut after its first voucher: the others are released, then renumbered in the next lot.
    await afipInvoiceRepository.settleLot(db(), key, 1, {
      authorized: [{ ...authorization(first[0]?.id ?? ''), cbteNro: 1 }],
      rejected: [],
      released: first.slice(1).map((r) => r.id),
      lastCbteNro: 1,
    });
    const again = await afipInvoiceRepository.reserveLot(db(), key, 1, [
      { idempotencyKey: 'lot-1', jobId: 'job-1b', cbteNro: 2, request: { i: 1 } },
      { idempotencyKey: 'lot-2', jobId: 'job-2b', cbteNro: 3, request: { i: 2 } },
    ]);
    expect(again.map((r) => r.id)).toEqual(first.slice(1).map((r) => r.id));
    expect(again.map((r) => [r.cbteNro, r.status, r.jobId])).toEqual([
      [2, 'reserved', 'job-1b'],
      [3, 'reserved', 'job-2b'],
    ]);
    // An authorised invoice is never reserved again.
    await expect(lot([4])).rejects.toThrow('lot-0 is already authorized');
  });
});
