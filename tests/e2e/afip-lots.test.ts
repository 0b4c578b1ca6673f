import { afipInvoiceRepository, syncStatusRepository } from '@jobfleet/db';
import { postInvoice } from '../support/afip';
import { invoiceRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { startTestSystem, TEST_CUIT, type TestSystem } from '../support/system';

const VOUCHER = { cuit: TEST_CUIT, ptoVta: 1, cbteTipo: 1 };
// 21 % VAT on 2000: the amount the simulator is told to reject.
const REJECTED = { amounts: { total: 2420, net: 2000, vat: 420 }, vat: [{ rateId: 5, base: 2000, amount: 420 }] };

const settled = (system: TestSystem, invoiceId: string) =>
  waitFor(
    async () => {
      const row = await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'afip-invoice', invoiceId);
      return row?.status === 'synced' || row?.status === 'failed' ? row : undefined;
    },
    { timeoutMs: 30_000, what: `invoice ${invoiceId} settled` },
  );
const numbersAtAfip = (system: TestSystem) => system.afip.authorized(TEST_CUIT, 1, 1).map((v) => v.cbteNro);
const consecutive = (count: number) => Array.from({ length: count }, (_, i) => i + 1);

describe('afip-sync lots (several vouchers per FECAESolicitar)', () => {
  let system: TestSystem;
  beforeAll(async () => {
    system = await startTestSystem({ label: 'e2e-afip-lots', env: { AFIP_SYNC_CONCURRENCY: '10' } });
  });
  afterAll(async () => {
    await system.close();
  });

  it('a voucher AFIP rejects inside a lot fails its own job (AFIP_REJECTED, stored); the others are authorised with no gap', async () => {
    system.afip.setRejectedTotal(2420);
    const ids = Array.from({ length: 10 }, (_, i) => `part-${i}`);
    const answers = await Promise.all(ids.map((id, i) => postInvoice(system, invoiceRequest(id, i === 4 ? REJECTED : {}))));
    expect(answers.map((a) => a.statusCode)).toEqual(Array(10).fill(202));
    const rows = await Promise.all(ids.map((id) => settled(system, id)));
    system.afip.setRejectedTotal(null);

    expect(rows.map((r) => r.status)).toEqual(ids.map((_, i) => (i === 4 ? 'failed' : 'synced')));
    const rejected = rows[4];
    expect(rejected).toMatchObject({ attempts: 1, lastError: { code: 'AFIP_REJECTED' } });
    expect(JSON.stringify(rejected?.lastError)).toContain('10999');
    // The rejected voucher consumed no number: AFIP holds 1..9, one per authorised invoice.
    expect(numbersAtAfip(system)).toEqual(consecutive(9));
    const numbers = await afipInvoiceRepository.listNumbers(system.testDb.database.db, { tenantId: system.tenantId, ...VOUCHER });
    expect(numbers.filter((r) => r.status === 'authorized').map((r) => r.cbteNro)).toEqual(consecutive(9));
    expect(numbers.filter((r) => r.status === 'rejected')).toHaveLength(1);
    expect(new Set(rows.filter((r) => r.status === 'synced').map((r) => r.externalRef)).size).toBe(9);
    // Several vouchers went per request, and the last number was asked of AFIP once.
    expect(system.afip.requestCount('FECAESolicitar')).toBeLessThan(10);
    expect(system.afip.requestCount('FECompUltimoAutorizado')).toBe(1);
  });

  it('skips FECompUltimoAutorizado while the fleet knows the last number, and asks it again on a numbering error (10016)', async () => {
    await postInvoice(system, invoiceRequest('known-1'));
    await settled(system, 'known-1');
    expect(system.afip.requestCount('FECompUltimoAutorizado')).toBe(1);

    // Another system of the same CUIT takes the next number: the fleet's known last number is stale.
    const elsewhere = system.afip.issueElsewhere(TEST_CUIT, 1, 1, 99);
    const ids = ['stale-1', 'stale-2', 'stale-3'];
    await Promise.all(ids.map((id) => postInvoice(system, invoiceRequest(id))));
    const rows = await Promise.all(ids.map((id) => settled(system, id)));
    expect(rows.map((r) => [r.status, r.attempts])).toEqual(ids.map(() => ['synced', 1]));
    // One recheck, then the lot went again after the outside voucher.
    expect(system.afip.requestCount('FECompUltimoAutorizado')).toBe(2);
    expect(numbersAtAfip(system)).toEqual(consecutive(elsewhere + 3));
    const mine = await afipInvoiceRepository.listNumbers(system.testDb.database.db, { tenantId: system.tenantId, ...VOUCHER });
    expect(mine.filter((r) => r.status === 'authorized').map((r) => r.cbteNro)).toEqual(consecutive(elsewhere + 3).filter((n) => n !== elsewhere));
  });

  it('recovery releases a dead holder\'s reserved number that AFIP holds for another voucher, and asks the last number again', async () => {
    const series = { tenantId: system.tenantId, cuit: TEST_CUIT, ptoVta: 2, cbteTipo: 1 };
    // A holder recorded number 1 for an invoice and died; meanwhile another system took number 1 at AFIP.
    await afipInvoiceRepository.reserveLot(system.testDb.database.db, series, 1, [
      { idempotencyKey: 'invoice:orphan', jobId: 'dead-job', cbteNro: 1, request: invoiceRequest('orphan', { ptoVta: 2 }) },
    ]);
    system.afip.issueElsewhere(TEST_CUIT, 2, 1, 99);
    const consultas = system.afip.requestCount('FECompConsultar');

    await postInvoice(system, invoiceRequest('after-orphan', { ptoVta: 2 }));
    const row = await settled(system, 'after-orphan');
    expect(row.status).toBe('synced');
    expect(system.afip.requestCount('FECompConsultar')).toBe(consultas + 1);
    const numbers = await afipInvoiceRepository.listNumbers(system.testDb.database.db, series);
    expect(numbers).toEqual([
      { cbteNro: 1, status: 'released' },
      { cbteNro: 2, status: 'authorized' },
    ]);
    expect(system.afip.authorized(TEST_CUIT, 2, 1).map((v) => [v.cbteNro, v.cae === row.externalRef])).toEqual([
      [1, false],
      [2, true],
    ]);
  });
});

describe('afip-sync with AFIP_BATCH_MAX_VOUCHERS=1', () => {
  let system: TestSystem;
  beforeAll(async () => {
    system = await startTestSystem({ label: 'e2e-afip-single', env: { AFIP_SYNC_CONCURRENCY: '10', AFIP_BATCH_MAX_VOUCHERS: '1' } });
  });
  afterAll(async () => {
    await system.close();
  });

  it('sends one voucher per FECAESolicitar and never asks FECompTotXRequest', async () => {
    const ids = Array.from({ length: 6 }, (_, i) => `single-${i}`);
    await Promise.all(ids.map((id) => postInvoice(system, invoiceRequest(id))));
    const rows = await Promise.all(ids.map((id) => settled(system, id)));
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => 'synced'));
    expect(system.afip.requestCount('FECAESolicitar')).toBe(6);
    expect(system.afip.requestCount('FECompTotXRequest')).toBe(0);
    expect(numbersAtAfip(system)).toEqual(consecutive(6));
  });
});
