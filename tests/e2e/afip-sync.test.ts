import { afipInvoiceRepository, syncStatusRepository, verifyLockAuditChains } from '@jobfleet/db';
import { invoiceRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { startTestSystem, TEST_CUIT, type TestSystem } from '../support/system';

const VOUCHER = { cuit: TEST_CUIT, ptoVta: 1, cbteTipo: 1 };

describe('afip-sync end to end (API -> worker -> AFIP simulator over SOAP -> Postgres)', () => {
  let system: TestSystem;
  beforeAll(async () => {
    system = await startTestSystem({ label: 'e2e-afip', env: { AFIP_SYNC_CONCURRENCY: '10' } });
  });
  afterAll(async () => {
    await system.close();
  });

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    system.api.inject({
      method: 'POST',
      url: '/v1/jobs/afip-sync',
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json', ...headers },
      payload: JSON.stringify(body),
    });
  const statusOf = (invoiceId: string, status: string) =>
    waitFor(
      async () => {
        const row = await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'afip-invoice', invoiceId);
        return row?.status === status ? row : undefined;
      },
      { timeoutMs: 30_000, what: `invoice ${invoiceId} ${status}` },
    );

  it('authorises 20 concurrent invoices with consecutive numbers and a single WSAA login', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post(invoiceRequest(`inv-${i}`))));
    expect(answers.map((a) => a.statusCode)).toEqual(Array(20).fill(202));
    for (let i = 0; i < 20; i++) await statusOf(`inv-${i}`, 'synced');

    expect(system.afip.loginCount(TEST_CUIT)).toBe(1);
    const atAfip = system.afip.authorized(TEST_CUIT, 1, 1).map((v) => v.cbteNro);
    expect(atAfip).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const rows = await afipInvoiceRepository.listNumbers(system.testDb.database.db, { tenantId: system.tenantId, ...VOUCHER });
    expect(rows).toEqual(atAfip.map((cbteNro) => ({ cbteNro, status: 'authorized' })));

    const sync = await system.api.inject({
      method: 'GET',
      url: '/v1/sync/afip-invoice/inv-0',
      headers: { authorization: `Bearer ${system.apiKey}` },
    });
    expect(JSON.parse(sync.body)).toMatchObject({ status: 'synced', externalRef: expect.stringMatching(/^\d{14}$/) });
    // Lots: the 20 went in fewer requests, and the last number was asked of AFIP once, then known.
    expect(system.afip.requestCount('FECAESolicitar')).toBeLessThan(20);
    expect(system.afip.requestCount('FECompUltimoAutorizado')).toBe(1);
    // Every numbering lock operation left a verifiable audit trail (an acquisition and a release per lock holding).
    const audit = await verifyLockAuditChains(system.testDb.database.db);
    expect(audit.broken).toEqual([]);
    expect(audit.rows).toBeGreaterThanOrEqual(2);
  });

  it('an AFIP rejection fails the job at once with the AFIP codes stored and frees the number', async () => {
    const before = system.afip.authorized(TEST_CUIT, 1, 1).length;
    // Valid for our edge, but AFIP refuses a voucher dated a month back (error 10016).
    const monthAgo = new Date(Date.now() - 30 * 24 * 3600_000).toISOString().slice(0, 10);
    const answer = await post(invoiceRequest('inv-old', { date: monthAgo }));
    expect(answer.statusCode).toBe(202);
    const row = await statusOf('inv-old', 'failed');
    expect(row.attempts).toBe(1);
    expect(row.lastError).toMatchObject({ code: 'AFIP_REJECTED' });
    expect(JSON.stringify(row.lastError)).toContain('10016');
    expect(system.afip.authorized(TEST_CUIT, 1, 1)).toHaveLength(before);

    const job = await system.api.inject({
      method: 'GET',
      url: `/v1/jobs/${(JSON.parse(answer.body) as { jobId: string }).jobId}`,
      headers: { authorization: `Bearer ${system.apiKey}` },
    });
    const body = JSON.parse(job.body);
    expect(body).toMatchObject({ state: 'failed', error: { code: 'AFIP_REJECTED', retryable: false, message: expect.stringContaining('10016') } });
    // Producers get code, message and retryability; stacks (absolute server paths) stay in the logs.
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'retryable']);
    expect(job.body).not.toMatch(/\/work\/|node_modules|\.ts:\d+/);

    // The rejected number is reused by the next invoice: no gap at AFIP.
    await post(invoiceRequest('inv-after-reject'));
    await statusOf('inv-after-reject', 'synced');
    expect(system.afip.authorized(TEST_CUIT, 1, 1).map((v) => v.cbteNro)).toEqual(Array.from({ length: before + 1 }, (_, i) => i + 1));
  });

  it('a replayed request creates no second invoice', async () => {
    const first = await post(invoiceRequest('inv-replay'), { 'idempotency-key': 'replay-1' });
    const second = await post(invoiceRequest('inv-replay'), { 'idempotency-key': 'replay-1' });
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toBe(first.body);
    await statusOf('inv-replay', 'synced');
    const numbers = system.afip.authorized(TEST_CUIT, 1, 1).map((v) => v.cbteNro);
    expect(new Set(numbers).size).toBe(numbers.length);
  });

  it.each([
    ['wrong totals', { amounts: { total: 1300, net: 1000, vat: 210 } }, 'amounts.total'],
    ['an unknown voucher type', { cbteTipo: 99 }, 'cbteTipo'],
    ['a negative amount', { amounts: { total: 1210, net: 1000, vat: 210, exempt: -1 } }, 'amounts.exempt'],
  ])('refuses an invoice with %s (422 naming the field) and enqueues nothing', async (_label, change, path) => {
    // All jobs in any state: the previous test's last job may still be moving from active to completed.
    const jobCount = async () => Object.values(await system.queues['afip-sync'].getJobCounts()).reduce((sum, n) => sum + n, 0);
    const before = await jobCount();
    const answer = await post(invoiceRequest('inv-bad', change));
    expect(answer.statusCode).toBe(422);
    expect(answer.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(JSON.parse(answer.body).errors.map((e: { path: string }) => e.path)).toContain(path);
    expect(await jobCount()).toBe(before);
    expect(await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'afip-invoice', 'inv-bad')).toBeUndefined();
  });
});
