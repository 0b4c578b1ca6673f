import { afipInvoiceRepository, createApiKey, createTenant, googleConnectionRepository, syncStatusRepository } from '@jobfleet/db';
import { parseKeyring } from '@jobfleet/secrets';
import { sql, type SQL } from 'drizzle-orm';
import { createRedisConnection, type RedisClient } from '@jobfleet/queue';
import { invoiceRequest, reservationRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { scanKeys, TEST_REDIS_URL } from '../support/redis';
import { seedTenantConnections, startTestSystem, TEST_CUIT, TEST_SECRETS_KEYS, type TestSystem } from '../support/system';

// Tenant B's own issuer: a valid CUIT (mod-11 check digit 2) that tenant A does not own.
const CUIT_B = 30709876542;
const TENANT_B = 'tenant-b-isolation';
const B_CALENDAR = 'b-calendar@example.com';

describe('tenant isolation end to end (API admission, worker re-check, per-tenant tickets and numbering)', () => {
  let system: TestSystem;
  let keyB: string;
  let redis: RedisClient;
  beforeAll(async () => {
    redis = createRedisConnection(TEST_REDIS_URL, 'worker', { name: 'tenant-isolation-test' });
    system = await startTestSystem({ label: 'e2e-tenancy', env: { AFIP_SYNC_CONCURRENCY: '10' } });
    const { db } = system.testDb.database;
    await createTenant(db, { id: TENANT_B, name: 'Tenant B' });
    await seedTenantConnections(db, TENANT_B, { cuits: [CUIT_B], calendar: { policy: 'allowlist', calendars: [B_CALENDAR] } });
    keyB = (await createApiKey(db, { tenantId: TENANT_B, name: 'b', scopes: ['jobs:write', 'jobs:read'] })).key;
  });
  afterAll(async () => {
    redis.disconnect();
    await system.close();
  });

  const post = (queue: 'afip-sync' | 'calendar-sync', key: string, body: unknown, headers: Record<string, string> = {}) =>
    system.api.inject({
      method: 'POST',
      url: `/v1/jobs/${queue}`,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      payload: JSON.stringify(body),
    });
  const rows = <T extends Record<string, unknown>>(query: SQL) => system.testDb.database.rows<T>(query);
  const invoiceRowsOf = (tenantId: string) =>
    rows<{ cuit: string; cbte_nro: string; status: string }>(
      sql`select cuit, cbte_nro, status from afip_invoices where tenant_id = ${tenantId} order by cbte_nro`,
    );
  const statusOf = (tenantId: string, kind: string, entityId: string, status: string) =>
    waitFor(
      async () => {
        const row = await syncStatusRepository.get(system.testDb.database.db, tenantId, kind, entityId);
        return row?.status === status ? row : undefined;
      },
      { timeoutMs: 30_000, what: `${kind} ${entityId} of ${tenantId} ${status}` },
    );
  /** The entity's status once synced or failed, so a wrong outcome fails at once with its error. */
  const settled = (tenantId: string, kind: string, entityId: string) =>
    waitFor(
      async () => {
        const row = await syncStatusRepository.get(system.testDb.database.db, tenantId, kind, entityId);
        return row?.status === 'synced' || row?.status === 'failed' ? row : undefined;
      },
      { timeoutMs: 30_000, what: `${kind} ${entityId} of ${tenantId} settled` },
    );
  const failedJob = async (queue: 'afip-sync' | 'calendar-sync', jobId: string) => {
    await waitFor(async () => (await system.queues[queue].getJobState(jobId)) === 'failed', { timeoutMs: 20_000, what: `job ${jobId} failed` });
    const job = await system.queues[queue].getJob(jobId);
    if (!job) throw new Error(`job ${jobId} vanished`);
    return job;
  };

  it("refuses B's invoice for A's CUIT with 403 problem+json and leaves no job, key, invoice or status behind", async () => {
    const counts = await system.queues['afip-sync'].getJobCounts();
    const body = invoiceRequest('b-steals-a', { cuit: TEST_CUIT });
    const answer = await post('afip-sync', keyB, body, { 'idempotency-key': 'b-steal-1' });
    expect(answer.statusCode).toBe(403);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(answer.body)).toMatchObject({ type: '/problems/connection-not-owned', status: 403, detail: expect.stringContaining(String(TEST_CUIT)) });

    expect(await system.queues['afip-sync'].getJobCounts()).toEqual(counts);
    expect(await rows(sql`select key, status_code from idempotency_keys where tenant_id = ${TENANT_B}`)).toEqual([]);
    expect(await invoiceRowsOf(TENANT_B)).toEqual([]);
    expect(await syncStatusRepository.get(system.testDb.database.db, TENANT_B, 'afip-invoice', 'b-steals-a')).toBeUndefined();

    // The key was freed, not left in flight: the same request again is judged again (403, not 409).
    const again = await post('afip-sync', keyB, body, { 'idempotency-key': 'b-steal-1' });
    expect(again.statusCode).toBe(403);
    expect(JSON.parse(again.body)).toMatchObject({ type: '/problems/connection-not-owned' });
    expect(await system.queues['afip-sync'].getJobCounts()).toEqual(counts);
    expect(system.afip.requestCount()).toBe(0);
  });

  it('lets B write only to its allowlisted calendar, with its own token', async () => {
    system.calendar.reset();
    const counts = await system.queues['calendar-sync'].getJobCounts();
    const outside = await post('calendar-sync', keyB, reservationRequest('b-res-outside', 1, { calendarId: 'restaurant@example.com' }));
    expect(outside.statusCode).toBe(403);
    expect(outside.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(outside.body)).toMatchObject({ type: '/problems/connection-not-owned', detail: expect.stringContaining('restaurant@example.com') });
    expect(await system.queues['calendar-sync'].getJobCounts()).toEqual(counts);
    expect(await syncStatusRepository.get(system.testDb.database.db, TENANT_B, 'reservation', 'b-res-outside')).toBeUndefined();

    const own = await post('calendar-sync', keyB, reservationRequest('b-res-own', 1, { calendarId: B_CALENDAR }));
    expect(own.statusCode).toBe(202);
    const row = await statusOf(TENANT_B, 'reservation', 'b-res-own', 'synced');
    expect(system.calendar.listEvents(B_CALENDAR).map((e) => e.id)).toEqual([row.externalRef]);
    expect(system.calendar.listEvents('restaurant@example.com')).toEqual([]);
    const tokens = system.calendar.receivedTokens();
    expect(tokens.length).toBeGreaterThan(0);
    expect(new Set(tokens)).toEqual(new Set([`token-of-${TENANT_B}`]));
    expect(tokens).not.toContain(`token-of-${system.tenantId}`);
  });

  it("fails a job put straight into Redis for A's CUIT at the worker, before any AFIP call or invoice row", async () => {
    const requestsBefore = system.afip.requestCount();
    const loginsBefore = system.afip.loginCount();
    const job = await system.queues['afip-sync'].add(
      'authorize',
      { tenantId: TENANT_B, idempotencyKey: 'b-forged-1', request: invoiceRequest('b-forged', { cuit: TEST_CUIT }) },
      { jobId: 'b-forged-afip', attempts: 5 },
    );
    const failed = await failedJob('afip-sync', job.id ?? '');
    expect(failed.failedReason).toMatch(/^AFIP_ISSUER_NOT_OWNED: /);
    // Permanent: one attempt, no retries against AFIP.
    expect(failed.attemptsMade).toBe(1);
    const status = await statusOf(TENANT_B, 'afip-invoice', 'b-forged', 'failed');
    expect(status.lastError).toMatchObject({ code: 'AFIP_ISSUER_NOT_OWNED', details: { cuit: TEST_CUIT } });

    expect(system.afip.requestCount()).toBe(requestsBefore);
    expect(system.afip.requestCount('loginCms')).toBe(0);
    expect(system.afip.requestCount('FECompUltimoAutorizado')).toBe(0);
    expect(system.afip.requestCount('FECAESolicitar')).toBe(0);
    expect(system.afip.loginCount()).toBe(loginsBefore);
    expect(system.afip.authorized(TEST_CUIT, 1, 1)).toEqual([]);
    expect(await invoiceRowsOf(TENANT_B)).toEqual([]);
    expect(await rows(sql`select id from afip_invoices where cuit = ${TEST_CUIT}`)).toEqual([]);
    // No ticket was fetched or cached under B for A's CUIT.
    expect(await redis.exists(`${system.config.redis.prefix}:afip-wsaa:ticket:${TENANT_B}:${TEST_CUIT}:wsfe`)).toBe(0);
  });

  it("fails a job put straight into Redis for a calendar outside B's allowlist, without calling Calendar", async () => {
    system.calendar.reset();
    const job = await system.queues['calendar-sync'].add(
      'create',
      { tenantId: TENANT_B, idempotencyKey: 'b-forged-cal', request: reservationRequest('b-res-forged', 1, { calendarId: 'restaurant@example.com' }) },
      { jobId: 'b-forged-calendar', attempts: 5 },
    );
    const failed = await failedJob('calendar-sync', job.id ?? '');
    expect(failed.failedReason).toMatch(/^CALENDAR_NOT_ALLOWED: /);
    expect(failed.attemptsMade).toBe(1);
    const status = await statusOf(TENANT_B, 'reservation', 'b-res-forged', 'failed');
    expect(status.lastError).toMatchObject({ code: 'CALENDAR_NOT_ALLOWED', details: { calendarId: 'restaurant@example.com' } });
    expect(system.calendar.requestCount()).toBe(0);
    expect(system.calendar.receivedTokens()).toEqual([]);
    expect(system.calendar.listEvents()).toEqual([]);
  });

  it('writes at once to a calendar just added to the allowlist, though the worker had cached the old list', async () => {
    system.calendar.reset();
    const { db } = system.testDb.database;
    // The worker has read B's connection (b-res-own above) and holds its access in its cache.
    const added = 'b-terrace@example.com';
    await googleConnectionRepository.rotate(db, parseKeyring(TEST_SECRETS_KEYS), { tenantId: TENANT_B, access: { policy: 'allowlist', calendars: [B_CALENDAR, added] } });
    const answer = await post('calendar-sync', keyB, reservationRequest('b-res-terrace', 1, { calendarId: added }));
    expect(answer.statusCode).toBe(202);
    const row = await settled(TENANT_B, 'reservation', 'b-res-terrace');
    expect(row).toMatchObject({ status: 'synced', lastError: null });
    expect(system.calendar.listEvents(added).map((e) => e.id)).toEqual([row.externalRef]);
    expect(new Set(system.calendar.receivedTokens())).toEqual(new Set([`token-of-${TENANT_B}`]));
  });

  it('keeps separate numbering and separate WSAA tickets for two tenants invoicing the same series at once', async () => {
    const perTenant = 8;
    // Both series are point of sale 1, voucher type 1: only the tenant and its CUIT tell them apart.
    const answers = await Promise.all(
      Array.from({ length: perTenant }, (_, i) => [
        post('afip-sync', system.apiKey, invoiceRequest(`a-inv-${i}`)),
        post('afip-sync', keyB, invoiceRequest(`b-inv-${i}`, { cuit: CUIT_B })),
      ]).flat(),
    );
    expect(answers.map((a) => a.statusCode)).toEqual(Array(2 * perTenant).fill(202));
    for (let i = 0; i < perTenant; i++) {
      await statusOf(system.tenantId, 'afip-invoice', `a-inv-${i}`, 'synced');
      await statusOf(TENANT_B, 'afip-invoice', `b-inv-${i}`, 'synced');
    }

    const sequence = Array.from({ length: perTenant }, (_, i) => i + 1);
    expect(system.afip.authorized(TEST_CUIT, 1, 1).map((v) => v.cbteNro)).toEqual(sequence);
    expect(system.afip.authorized(CUIT_B, 1, 1).map((v) => v.cbteNro)).toEqual(sequence);
    const { db } = system.testDb.database;
    const authorized = sequence.map((cbteNro) => ({ cbteNro, status: 'authorized' }));
    expect(await afipInvoiceRepository.listNumbers(db, { tenantId: system.tenantId, cuit: TEST_CUIT, ptoVta: 1, cbteTipo: 1 })).toEqual(authorized);
    expect(await afipInvoiceRepository.listNumbers(db, { tenantId: TENANT_B, cuit: CUIT_B, ptoVta: 1, cbteTipo: 1 })).toEqual(authorized);
    // Each tenant's rows are under its own CUIT only.
    expect(new Set((await invoiceRowsOf(TENANT_B)).map((r) => Number(r.cuit)))).toEqual(new Set([CUIT_B]));
    expect(new Set((await invoiceRowsOf(system.tenantId)).map((r) => Number(r.cuit)))).toEqual(new Set([TEST_CUIT]));

    // One login per CUIT, each ticket cached under its own tenant and CUIT.
    expect(system.afip.loginCount(TEST_CUIT)).toBe(1);
    expect(system.afip.loginCount(CUIT_B)).toBe(1);
    expect(system.afip.loginCount()).toBe(2);
    const prefix = system.config.redis.prefix;
    const ticketKeys = await scanKeys(redis, `${prefix}:afip-wsaa:ticket:*`);
    const keyA = `${prefix}:afip-wsaa:ticket:${system.tenantId}:${TEST_CUIT}:wsfe`;
    const keyOfB = `${prefix}:afip-wsaa:ticket:${TENANT_B}:${CUIT_B}:wsfe`;
    expect(ticketKeys.sort()).toEqual([keyA, keyOfB].sort());
    const [ticketA, ticketB] = await Promise.all([redis.get(keyA), redis.get(keyOfB)]);
    const tokenOf = (raw: string | null) => (JSON.parse(raw ?? 'null') as { token: string } | null)?.token;
    expect(tokenOf(ticketA)).toEqual(expect.any(String));
    expect(tokenOf(ticketB)).toEqual(expect.any(String));
    expect(tokenOf(ticketA)).not.toBe(tokenOf(ticketB));

    // Numbering was serialised per tenant: one voucher lock chain each, none for B under A's CUIT
    // (the forged job above was refused before it took a lock). The audit is written in batches.
    const voucherChains = () =>
      rows<{ chain: string }>(sql`select distinct chain from lock_audit where chain like 'afip-voucher:%'`).then((r) => r.map((c) => c.chain).sort());
    const expected = [`afip-voucher:${system.tenantId}:${TEST_CUIT}:1:1`, `afip-voucher:${TENANT_B}:${CUIT_B}:1:1`].sort();
    await waitFor(async () => (await voucherChains()).length >= 2, { timeoutMs: 10_000, what: 'voucher lock audit rows' });
    expect(await voucherChains()).toEqual(expected);
  });

  it('authorises at once for an issuer just added, though the worker had refused that CUIT before', async () => {
    const cuit = 30699999993;
    const forged = await system.queues['afip-sync'].add(
      'authorize',
      { tenantId: TENANT_B, idempotencyKey: 'b-early-1', request: invoiceRequest('b-early', { cuit }) },
      { jobId: 'b-early-afip', attempts: 5 },
    );
    expect((await failedJob('afip-sync', forged.id ?? '')).failedReason).toMatch(/^AFIP_ISSUER_NOT_OWNED: /);

    await seedTenantConnections(system.testDb.database.db, TENANT_B, { cuits: [cuit], calendar: false });
    const answer = await post('afip-sync', keyB, invoiceRequest('b-new-issuer', { cuit }));
    expect(answer.statusCode).toBe(202);
    expect(await settled(TENANT_B, 'afip-invoice', 'b-new-issuer')).toMatchObject({ status: 'synced', lastError: null });
    expect(system.afip.authorized(cuit, 1, 1).map((v) => v.cbteNro)).toEqual([1]);
    expect(system.afip.loginCount(cuit)).toBe(1);
  });
});
