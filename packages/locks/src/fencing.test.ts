import { afipInvoiceRepository, createTenant, FencedOutError, schema } from '@jobfleet/db';
import { eq } from 'drizzle-orm';
import { createLockTestBed, sleep, type LockTestBed } from './test-support';

// A holder that stops (GC pause, frozen VM, SIGSTOP) past its lock's TTL wakes up believing it
// still holds the lock: only the fencing token lets Postgres refuse what it writes next.
describe('fencing a paused lock holder out of the AFIP invoice rows', () => {
  let bed: LockTestBed;
  const tenantId = 'tenant-fencing';
  const key = { tenantId, cuit: 30712345671, ptoVta: 1, cbteTipo: 1 };
  const lockKey = `afip-voucher:${tenantId}:30712345671:1:1`;
  beforeAll(async () => {
    bed = await createLockTestBed('locks-fencing');
    await createTenant(bed.testDb.database.db, { id: tenantId, name: tenantId });
  });
  afterAll(async () => {
    await bed.close();
  });

  const db = () => bed.testDb.database.db;
  const reserve = async (idempotencyKey: string, cbteNro: number, fencingToken: number) => {
    const [row] = await afipInvoiceRepository.reserveLot(db(), key, fencingToken, [{ idempotencyKey, jobId: `job-${idempotencyKey}`, cbteNro, request: { idempotencyKey } }]);
    if (!row) throw new Error('no row reserved');
    return row;
  };
  const nothing = { authorized: [], rejected: [], released: [] };
  const authorize = (id: string, cae: string, fencingToken: number) =>
    afipInvoiceRepository.settleLot(db(), key, fencingToken, { ...nothing, authorized: [{ id, ...authorization(cae) }], lastCbteNro: 1 });
  const release = (id: string, fencingToken: number) => afipInvoiceRepository.settleLot(db(), key, fencingToken, { ...nothing, released: [id] });
  const invoiceRows = () => db().select().from(schema.afipInvoices).where(eq(schema.afipInvoices.tenantId, tenantId)).orderBy(schema.afipInvoices.createdAt);
  const authorization = (cae: string) => ({ cbteNro: 1, cae, caeDueDate: '20261210', response: { cae } });

  it('refuses every write of a holder whose lock expired while it was paused, once the next holder has written', async () => {
    const [workerA, workerB] = bed.managers as [LockTestBed['managers'][number], LockTestBed['managers'][number]];
    // No auto-extension: a paused process renews nothing, so its lock runs out after 300 ms.
    const a = await workerA.acquire(lockKey, { ttlMs: 300, autoExtend: false });
    if (!a) throw new Error('A did not get the free lock');
    const reservedByA = await reserve('inv-a', 1, a.fencingToken);

    // A "pauses" past its TTL: it runs nothing meanwhile, so it never looks at its signal.
    await sleep(450);
    const b = await workerB.acquire(lockKey, { ttlMs: 5000 });
    if (!b) throw new Error('B did not get the expired lock');
    expect(b.fencingToken).toBeGreaterThan(a.fencingToken);
    // B finds A's number not taken at AFIP, frees it and reserves it for its own invoice.
    await release(reservedByA.id, b.fencingToken);
    const reservedByB = await reserve('inv-b', 1, b.fencingToken);
    const afterB = await invoiceRows();
    expect(afterB.map((r) => [r.idempotencyKey, r.cbteNro, r.status])).toEqual([
      ['inv-a', 1, 'released'],
      ['inv-b', 1, 'reserved'],
    ]);

    // A wakes up and carries on where it stopped: every write is refused, nothing changes.
    await expect(authorize(reservedByA.id, '75000000000001', a.fencingToken)).rejects.toBeInstanceOf(FencedOutError);
    await expect(
      afipInvoiceRepository.settleLot(db(), key, a.fencingToken, { ...nothing, rejected: [{ id: reservedByA.id, response: { result: 'R' } }] }),
    ).rejects.toBeInstanceOf(FencedOutError);
    await expect(reserve('inv-a', 1, a.fencingToken)).rejects.toMatchObject({ code: 'LOCK_FENCED_OUT', details: { fencingToken: a.fencingToken } });
    await expect(reserve('inv-a-2', 2, a.fencingToken)).rejects.toBeInstanceOf(FencedOutError);
    await expect(release(reservedByB.id, a.fencingToken)).rejects.toBeInstanceOf(FencedOutError);
    expect(await invoiceRows()).toEqual(afterB);
    expect(await a.release()).toBe(false);

    // B, the current holder, settles its invoice.
    await authorize(reservedByB.id, '75000000000002', b.fencingToken);
    expect((await invoiceRows()).map((r) => [r.idempotencyKey, r.status, r.cae])).toEqual([
      ['inv-a', 'released', null],
      ['inv-b', 'authorized', '75000000000002'],
    ]);
    expect(await b.release()).toBe(true);
  });

  it('lets the same holder keep writing while its lock is extended past the TTL', async () => {
    const [workerA] = bed.managers as [LockTestBed['managers'][number]];
    // A TTL of 2 s: its auto-extension every 667 ms survives an event loop held up to about 1.3 s
    // by a loaded CI machine (at 600 ms, a 400 ms stall lost the lock once).
    const lock = await workerA.acquire(lockKey, { ttlMs: 2000 });
    if (!lock) throw new Error('the lock is not free');
    try {
      // Auto-extension keeps it ours (and its token the newest) well past its TTL.
      await sleep(3000);
      expect(lock.signal.aborted).toBe(false);
      await expect(reserve('inv-c', 2, lock.fencingToken)).resolves.toMatchObject({ status: 'reserved', cbteNro: 2 });
    } finally {
      expect(await lock.release()).toBe(true);
    }
  });
});
