import { syncStatusRepository } from '@jobfleet/db';
import { createRedisConnection } from '@jobfleet/queue';
import { invoiceRequest, reservationRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { TEST_REDIS_URL } from '../support/redis';
import { startTestSystem, TEST_CUIT, type TestSystem } from '../support/system';

// A dependency outage opens its breaker: jobs wait in delayed without spending attempts, their
// status says why, readiness stays 200, and the backlog drains by itself once the dependency is back.
describe('circuit breakers during a dependency outage', () => {
  let system: TestSystem;
  beforeAll(async () => {
    system = await startTestSystem({
      label: 'e2e-breakers',
      env: {
        CALENDAR_MAX_FAILURES: '3',
        AFIP_MAX_FAILURES: '3',
        BREAKER_HALF_OPEN_AFTER_MS: '1000',
        DEPENDENCY_RETRIES: '0',
        CALENDAR_SYNC_CONCURRENCY: '5',
        // Few attempts: were each deferral to spend one, these jobs would fail during the outage.
        CALENDAR_SYNC_ATTEMPTS: '5',
        AFIP_SYNC_ATTEMPTS: '5',
        AFIP_WSAA_RECHECK_SECONDS: '1',
      },
    });
  });
  afterAll(async () => {
    await system.close();
  });

  const post = (queue: string, body: unknown) =>
    system.api.inject({
      method: 'POST',
      url: `/v1/jobs/${queue}`,
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
  const ready = async () => JSON.parse((await system.api.inject({ method: 'GET', url: '/health/ready' })).body) as Record<string, unknown>;
  const metric = async (name: string) => (await system.api.inject({ method: 'GET', url: '/metrics' })).body.split('\n').filter((l) => l.startsWith(name));

  it('Calendar down: jobs wait without spending attempts, status says so, readiness stays 200, backlog drains after', async () => {
    system.calendar.setOutage({ status: 503 });
    const ids = Array.from({ length: 20 }, (_, i) => `res-outage-${i}`);
    const jobIds: string[] = [];
    for (const id of ids) {
      const answer = await post('calendar-sync', reservationRequest(id));
      expect(answer.statusCode).toBe(202);
      jobIds.push((JSON.parse(answer.body) as { jobId: string }).jobId);
    }

    const waiting = await waitFor(
      async () => {
        const row = await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', ids[19] ?? '');
        return row?.status === 'waiting' ? row : undefined;
      },
      { timeoutMs: 15_000, what: 'a reservation waiting on the open breaker' },
    );
    expect(waiting.lastError).toMatchObject({ code: 'CIRCUIT_OPEN', message: 'waiting: calendar unavailable' });
    const health = await system.api.inject({ method: 'GET', url: '/health/ready' });
    expect(health.statusCode).toBe(200);
    expect(await ready()).toMatchObject({ status: 'degraded', degraded: { calendar: { state: 'open' } } });
    expect(await metric('circuit_breaker_state{dependency="calendar"}')).toEqual(['circuit_breaker_state{dependency="calendar"} 2']);
    const [deferred] = await metric('jobs_deferred_total{queue="calendar-sync",reason="dependency-unavailable",dependency="calendar"}');
    expect(Number(deferred?.split(' ')[1])).toBeGreaterThan(0);
    // Let it stay down through a few half-open trials.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await system.queues['calendar-sync'].getJobCounts('failed')).toEqual({ failed: 0 });

    system.calendar.setOutage(null);
    for (const id of ids) {
      await waitFor(
        async () => (await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', id))?.status === 'synced',
        { timeoutMs: 30_000, what: `${id} synced after the outage` },
      );
    }
    expect(system.calendar.insertCount()).toBe(20);
    expect(system.calendar.listEvents('primary')).toHaveLength(20);
    const jobs = await Promise.all(jobIds.map((id) => system.queues['calendar-sync'].getJob(id)));
    const spent = jobs.reduce((sum, job) => sum + (job?.attemptsMade ?? 99), 0);
    // One attempt each, plus the calls that opened the breaker and the failed half-open trials.
    expect(spent).toBeLessThanOrEqual(20 + 3 + 6);
    expect(await ready()).toMatchObject({ status: 'ok', degraded: {} });
    expect(await metric('circuit_breaker_transitions_total{dependency="calendar",to="closed"}')).toEqual([
      'circuit_breaker_transitions_total{dependency="calendar",to="closed"} 1',
    ]);
  }, 90_000);

  it('AFIP WSFE down: invoices wait, then get consecutive numbers with no voucher lost or doubled', async () => {
    system.afip.setOutage('service-unavailable', 'wsfe');
    const ids = Array.from({ length: 8 }, (_, i) => `inv-outage-${i}`);
    for (const id of ids) expect((await post('afip-sync', invoiceRequest(id))).statusCode).toBe(202);
    await waitFor(async () => (await ready()).status === 'degraded', { timeoutMs: 15_000, what: 'the WSFE breaker to open' });
    expect((await ready()).degraded).toHaveProperty('afip-wsfe');

    system.afip.setOutage(null, 'wsfe');
    for (const id of ids) {
      await waitFor(
        async () => (await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'afip-invoice', id))?.status === 'synced',
        { timeoutMs: 30_000, what: `${id} authorised after the outage` },
      );
    }
    expect(system.afip.authorized(TEST_CUIT, 1, 1).map((v) => v.cbteNro)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await system.queues['afip-sync'].getJobCounts('failed')).toEqual({ failed: 0 });
  }, 90_000);

  it('a WSAA ticket the fleet lost: invoices wait without spending attempts until AFIP lets the fleet log in again', async () => {
    const { db } = system.testDb.database;
    const status = async (id: string) => syncStatusRepository.get(db, system.tenantId, 'afip-invoice', id);
    expect((await post('afip-sync', invoiceRequest('inv-before-loss'))).statusCode).toBe(202);
    await waitFor(async () => (await status('inv-before-loss'))?.status === 'synced', { timeoutMs: 15_000, what: 'the first invoice' });
    const logins = system.afip.loginCount(TEST_CUIT);
    // The worker that logged in died before caching the ticket, or Redis lost it: AFIP still holds it.
    const redis = createRedisConnection(TEST_REDIS_URL, 'worker', { name: 'breakers-test' });
    try {
      expect(await redis.del(`${system.config.redis.prefix}:afip-wsaa:ticket:${system.tenantId}:${TEST_CUIT}:wsfe`)).toBe(1);
    } finally {
      redis.disconnect();
    }

    const ids = Array.from({ length: 4 }, (_, i) => `inv-lost-ticket-${i}`);
    const jobIds: string[] = [];
    for (const id of ids) {
      const answer = await post('afip-sync', invoiceRequest(id));
      expect(answer.statusCode).toBe(202);
      jobIds.push((JSON.parse(answer.body) as { jobId: string }).jobId);
    }
    const waiting = await waitFor(async () => {
      const row = await status(ids[0] ?? '');
      return row?.status === 'waiting' ? row : undefined;
    }, { timeoutMs: 15_000, what: 'an invoice waiting for a WSAA login' });
    expect(waiting.lastError).toMatchObject({ code: 'AFIP_WSAA_TICKET_LOST', message: 'waiting: afip-wsaa unavailable', details: { reason: 'alreadyAuthenticated' } });
    // Several rechecks pass while AFIP still holds the lost ticket: still waiting, nothing spent, WSAA asked about once a second.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await system.queues['afip-sync'].getJobCounts('failed', 'completed')).toMatchObject({ failed: 0 });
    expect(system.afip.loginCount(TEST_CUIT)).toBe(logins);
    const [lost] = await metric('afip_wsaa_tickets_total{result="lost"}');
    expect(Number(lost?.split(' ')[1])).toBeGreaterThan(0);

    system.afip.expireTickets(); // the lost ticket's 12 hours are over
    for (const id of ids) {
      await waitFor(async () => (await status(id))?.status === 'synced', { timeoutMs: 30_000, what: `${id} authorised after a new login` });
    }
    expect(system.afip.loginCount(TEST_CUIT)).toBe(logins + 1);
    const jobs = await Promise.all(jobIds.map((id) => system.queues['afip-sync'].getJob(id)));
    expect(jobs.map((job) => job?.attemptsMade)).toEqual([1, 1, 1, 1]);
  }, 90_000);
});
