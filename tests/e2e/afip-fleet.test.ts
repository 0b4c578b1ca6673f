import { afipInvoiceRepository, syncStatusRepository, verifyLockAuditChains } from '@jobfleet/db';
import { invoiceRequest } from '../support/fixtures';
import { AFIP_FLEET_ENV, postInvoice, startWorkerProcess } from '../support/afip';
import { waitFor, type RunningProcess } from '../support/processes';
import { startTestSystem, TEST_CUIT, type TestSystem } from '../support/system';

const VOUCHER = { cuit: TEST_CUIT, ptoVta: 1, cbteTipo: 1 };
const INVOICES = 200;

// Real worker processes contending for one voucher key: the fleet-wide lock must serialise numbering.
describe('afip-sync across worker processes', () => {
  let system: TestSystem;
  const workers: RunningProcess[] = [];
  beforeEach(async () => {
    system = await startTestSystem({
      label: 'e2e-afip-fleet',
      workers: false,
      env: { ...AFIP_FLEET_ENV, AFIP_SYNC_CONCURRENCY: '8' },
    });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill('SIGKILL')));
    await system.close();
  });

  const post = (body: unknown) => postInvoice(system, body);
  const startWorker = () => startWorkerProcess(system, workers);

  it(`4 workers authorise ${INVOICES} invoices of one voucher key as exactly 1..${INVOICES}`, async () => {
    for (let i = 0; i < 4; i++) startWorker();
    for (let i = 0; i < INVOICES; i += 50) {
      const answers = await Promise.all(Array.from({ length: 50 }, (_, j) => post(invoiceRequest(`fleet-${i + j}`))));
      expect(answers.filter((a) => a.statusCode !== 202).map((a) => `${a.statusCode} ${a.body}`)).toEqual([]);
    }
    await waitFor(async () => (await system.queues['afip-sync'].getJobCounts('completed')).completed === INVOICES, {
      timeoutMs: 120_000,
      what: `${INVOICES} completed jobs\n${workers.map((w) => w.output().slice(-2000)).join('\n')}`,
      intervalMs: 500,
    });
    const expected = Array.from({ length: INVOICES }, (_, i) => i + 1);
    expect(system.afip.authorized(TEST_CUIT, 1, 1).map((v) => v.cbteNro)).toEqual(expected);
    const rows = await afipInvoiceRepository.listNumbers(system.testDb.database.db, { tenantId: system.tenantId, ...VOUCHER });
    expect(rows.filter((r) => r.status === 'authorized').map((r) => r.cbteNro)).toEqual(expected);
    // One WSAA login for the whole fleet.
    expect(system.afip.loginCount(TEST_CUIT)).toBe(1);
    // The audit trail is flushed at shutdown; stop the workers gracefully, then verify the chains.
    await Promise.all(workers.splice(0).map((w) => w.kill('SIGTERM')));
    const audit = await verifyLockAuditChains(system.testDb.database.db);
    expect(audit.broken).toEqual([]);
    expect(audit.rows).toBeGreaterThanOrEqual(2);
  }, 180_000);

  it('a worker killed after AFIP authorised but before recording it: the retry recovers the CAE, no second voucher', async () => {
    // AFIP commits the authorisation, then holds its answer: the worker dies in between.
    system.afip.delayAfterAuthorize(10_000);
    const first = startWorker();
    const answer = await post(invoiceRequest('crash-after-cae'));
    const jobId: string = JSON.parse(answer.body).jobId;
    await waitFor(() => system.afip.authorized(TEST_CUIT, 1, 1).length === 1, { timeoutMs: 30_000, what: 'AFIP to authorise' });
    await first.kill('SIGKILL');
    system.afip.delayAfterAuthorize(0);

    startWorker();
    await waitFor(async () => (await system.queues['afip-sync'].getJobState(jobId)) === 'completed', {
      timeoutMs: 60_000,
      what: `the job completed by the second worker\n${workers.at(-1)?.output() ?? ''}`,
    });
    const job = await system.queues['afip-sync'].getJob(jobId);
    const atAfip = system.afip.authorized(TEST_CUIT, 1, 1);
    expect(atAfip).toHaveLength(1);
    expect(job?.returnvalue).toMatchObject({ cbteNro: 1, cae: atAfip[0]?.cae, recovered: true });
    const row = await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'afip-invoice', 'crash-after-cae');
    expect(row).toMatchObject({ status: 'synced', externalRef: atAfip[0]?.cae });
  }, 120_000);
});
