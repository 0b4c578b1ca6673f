import { afipInvoiceRepository, verifyLockAuditChains } from '@jobfleet/db';
import { invoiceRequest } from '../support/fixtures';
import { AFIP_FLEET_ENV, postInvoice, startWorkerProcess } from '../support/afip';
import { waitFor, type RunningProcess } from '../support/processes';
import { startTestSystem, TEST_CUIT, type TestSystem } from '../support/system';

const VOUCHER = { cuit: TEST_CUIT, ptoVta: 1, cbteTipo: 1 };
const INVOICES = 60;
// Invoice i: 21 % VAT on 1000 + i, so every voucher has an amount of its own.
const vatOf = (i: number) => Math.round((1000 + i) * 21) / 100;
const totalOf = (i: number) => Math.round((1000 + i + vatOf(i)) * 100) / 100;

// A worker numbering a lot of one series is SIGKILLed twice while its FECAESolicitar is out: once
// after AFIP committed the lot (its answer held back), once before AFIP evaluated it (the request
// hangs). The lots' numbers were recorded in Postgres before each request; the next holder looks
// each one up with FECompConsultar, records what AFIP has and renumbers what it has not.
describe('chaos: a worker SIGKILLed in the middle of an AFIP lot', () => {
  let system: TestSystem;
  const workers: RunningProcess[] = [];
  beforeAll(async () => {
    system = await startTestSystem({
      label: 'chaos-afip-lot',
      workers: false,
      env: {
        ...AFIP_FLEET_ENV,
        AFIP_SYNC_CONCURRENCY: '30',
        // 30 running jobs for the one tenant, so lots can be as large as the worker's concurrency.
        TENANT_DEFAULT_TIER: 'enterprise',
      },
    });
    // Every AFIP answer takes 100 ms: invoices gather while a lot is being formed, so lots hold several.
    system.afip.setLatency(100);
  });
  afterAll(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill('SIGKILL')));
    await system.close();
  }, 60_000);

  const post = (body: unknown) => postInvoice(system, body);
  const startWorker = () => startWorkerProcess(system, workers);
  const rows = () => afipInvoiceRepository.listNumbers(system.testDb.database.db, { tenantId: system.tenantId, ...VOUCHER });
  const reservedRows = async () => (await rows()).filter((r) => r.status === 'reserved');

  it('authorises every invoice exactly once, with no gap and no duplicate at AFIP, and the lock audit verifies', async () => {
    const jobIds: string[] = [];
    // Every invoice its own amount, so a voucher at AFIP can only match its own invoice.
    for (let i = 0; i < INVOICES; i++) {
      const net = 1000 + i;
      const vat = vatOf(i);
      const answer = await post(invoiceRequest(`lot-${i}`, { amounts: { total: totalOf(i), net, vat }, vat: [{ rateId: 5, base: net, amount: vat }] }));
      expect(answer.statusCode).toBe(202);
      jobIds.push((JSON.parse(answer.body) as { jobId: string }).jobId);
    }

    // 1. AFIP commits the first lot and holds its answer: the worker dies with the CAEs unrecorded.
    system.afip.delayAfterAuthorize(30_000);
    const first = startWorker();
    const committed = await waitFor(() => system.afip.authorized(TEST_CUIT, 1, 1).length, { timeoutMs: 60_000, what: `AFIP to authorise a lot\n${first.output()}` });
    const reservedAtFirstKill = await reservedRows();
    await first.kill('SIGKILL');
    system.afip.delayAfterAuthorize(0);
    // The lot was several vouchers, recorded in Postgres before the request went out.
    expect(committed).toBeGreaterThan(1);
    expect(reservedAtFirstKill.map((r) => r.cbteNro)).toEqual(Array.from({ length: committed }, (_, i) => i + 1));

    // 2. The next holder recovers that lot, then its own lot's request hangs before AFIP evaluates it: killed too.
    const lotsBefore = system.afip.requestCount('FECAESolicitar');
    system.afip.failNext(1, 'hang', 'wsfe', 'FECAESolicitar');
    const second = startWorker();
    await waitFor(() => system.afip.requestCount('FECAESolicitar') > lotsBefore, { timeoutMs: 60_000, what: `the second worker's lot\n${second.output()}` });
    const reservedAtSecondKill = await waitFor(async () => {
      const open = await reservedRows();
      return open.length > 0 ? open : undefined;
    }, { timeoutMs: 10_000, what: 'the hanging lot reserved' });
    await second.kill('SIGKILL');
    expect(reservedAtSecondKill.length).toBeGreaterThan(1);
    // The first lot was recovered before anything new was numbered; the hanging lot starts right after it.
    expect(reservedAtSecondKill[0]?.cbteNro).toBeGreaterThan(committed);
    const authorizedBeforeHang = system.afip.authorized(TEST_CUIT, 1, 1).length;
    expect(reservedAtSecondKill[0]?.cbteNro).toBe(authorizedBeforeHang + 1);

    // 3. A healthy worker finishes the series.
    const third = startWorker();
    await waitFor(async () => (await system.queues['afip-sync'].getJobCounts('completed')).completed === INVOICES, {
      timeoutMs: 120_000,
      intervalMs: 500,
      what: `${INVOICES} completed jobs\n${third.output().slice(-3000)}`,
    });

    const atAfip = system.afip.authorized(TEST_CUIT, 1, 1);
    const expected = Array.from({ length: INVOICES }, (_, i) => i + 1);
    // No duplicate, no gap: exactly 1..INVOICES, one voucher per invoice.
    expect(atAfip.map((v) => v.cbteNro)).toEqual(expected);
    expect(new Set(atAfip.map((v) => v.total)).size).toBe(INVOICES);
    const live = await rows();
    expect(live.filter((r) => r.status === 'authorized').map((r) => r.cbteNro)).toEqual(expected);
    expect(live.filter((r) => r.status === 'reserved')).toEqual([]);

    // Each job ended with its own invoice's CAE, the one AFIP holds under its number; the first lot's were recovered.
    const results = await Promise.all(jobIds.map(async (id) => (await system.queues['afip-sync'].getJob(id))?.returnvalue as { cbteNro: number; cae: string; recovered: boolean } | undefined));
    const byNumber = new Map(atAfip.map((v) => [v.cbteNro, v]));
    const cents = (amount: number | undefined) => Math.round((amount ?? 0) * 100);
    results.forEach((result, i) => {
      const voucher = byNumber.get(result?.cbteNro ?? -1);
      expect({ i, cae: result?.cae, total: cents(voucher?.total) }).toEqual({ i, cae: voucher?.cae, total: cents(totalOf(i)) });
    });
    expect(results.filter((r) => r?.recovered).length).toBeGreaterThanOrEqual(committed);

    // The audit trail is flushed at shutdown: stop the last worker gracefully, then verify every chain.
    await Promise.all(workers.splice(0).map((w) => w.kill('SIGTERM')));
    const audit = await verifyLockAuditChains(system.testDb.database.db);
    expect(audit.broken).toEqual([]);
    expect(audit.rows).toBeGreaterThan(0);
    console.log(
      `chaos afip-batch-sigkill: invoices=${INVOICES} committed-before-kill=${committed} hung-lot=${reservedAtSecondKill.length} ` +
        `requests=${system.afip.requestCount('FECAESolicitar')} consultas=${system.afip.requestCount('FECompConsultar')} audit-rows=${audit.rows}`,
    );
  }, 240_000);
});
