import { createApiKey, syncStatusRepository, tenantLimitsRepository, type ApiKeyScope } from '@jobfleet/db';
import { metricValue } from '@jobfleet/observability/testing';
import type { Queue } from 'bullmq';
import { reservationRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { defineTestKind } from '../support/test-kind';
import { seedTenantsWithKeys, startTestSystem, workerFleets, type TestSystem, type WorkerFleets } from '../support/system';

/** A kind of this test: each job holds its slot for a while and records how many of its tenant's run at once. */
const running = new Map<string, number>();
const mostRunning = new Map<string, number>();
const hold = defineTestKind('hold', async (tenantId) => {
  const now = (running.get(tenantId) ?? 0) + 1;
  running.set(tenantId, now);
  mostRunning.set(tenantId, Math.max(now, mostRunning.get(tenantId) ?? 0));
  await new Promise((resolve) => setTimeout(resolve, 150));
  running.set(tenantId, (running.get(tenantId) ?? 1) - 1);
  return { held: true };
});

describe('per-tenant quotas', () => {
  let system: TestSystem;
  let workers: WorkerFleets;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    // Limits are read on every request, so an override bites at once.
    system = await startTestSystem({ label: 'quotas', workers: false, extraKinds: [hold], env: { TENANT_LIMITS_CACHE_SECONDS: '0' } });
    workers = workerFleets(system, 'quotas');
    const { db } = system.testDb.database;
    const key = async (tenantId: string, scopes: ApiKeyScope[]) => (await createApiKey(db, { tenantId, name: 'quotas', scopes })).key;
    Object.assign(keys, await seedTenantsWithKeys(db, ['daily', 'backlogged', 'capped', 'roomy'], 'quotas'));
    keys.dailyAdmin = await key('daily', ['admin']);
    keys.otherAdmin = await key('roomy', ['admin']);
    keys.operator = await key('roomy', ['fleet:admin']);
  });
  afterAll(async () => {
    await workers.close();
    await system.close();
  });

  const startFleet = (kinds = [hold]) => workers.start(kinds);


  const post = (tenantId: string, url: string, payload: Record<string, unknown>, headers: Record<string, string> = {}) =>
    system.api.inject({ method: 'POST', url, headers: { authorization: `Bearer ${keys[tenantId] ?? ''}`, 'content-type': 'application/json', ...headers }, payload });
  const usage = async (key: string | undefined, url = '/v1/usage') => {
    const answer = await system.api.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key ?? ''}` } });
    return { status: answer.statusCode, body: JSON.parse(answer.body) as Record<string, unknown> & { kinds: Record<string, Record<string, number>> } };
  };
  const queueOf = (name: string): Queue => {
    const queue = (system.queues as Record<string, Queue | undefined>)[name];
    if (queue === undefined) throw new Error(`no queue ${name}`);
    return queue;
  };
  const jobsOf = async (queue: 'calendar-sync' | 'hold', tenantId: string) =>
    (await queueOf(queue).getJobs(['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'])).filter((job) => (job.data as { tenantId: string }).tenantId === tenantId);

  it('refuses the job over the day quota with 429 quota-exceeded, enqueues nothing and writes no row', async () => {
    const { db } = system.testDb.database;
    await tenantLimitsRepository.update(db, 'daily', { overrides: { kinds: { 'calendar-sync': { jobsPerDay: 3 } } } });
    for (const index of [1, 2, 3]) expect((await post('daily', '/v1/jobs/calendar-sync', reservationRequest(`day-${index}`))).statusCode).toBe(202);

    const refused = await post('daily', '/v1/jobs/calendar-sync', reservationRequest('day-4'), { 'idempotency-key': 'day-4' });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(refused.body)).toMatchObject({ type: '/problems/quota-exceeded', status: 429, quota: 'jobsPerDay', kind: 'calendar-sync', limit: 3, used: 3 });
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
    expect(await jobsOf('calendar-sync', 'daily')).toHaveLength(3);
    expect(await syncStatusRepository.get(db, 'daily', 'reservation', 'day-4')).toBeUndefined();
    // The key was freed: the same request is judged again (still over quota), not held as in flight.
    expect((await post('daily', '/v1/jobs/calendar-sync', reservationRequest('day-4'), { 'idempotency-key': 'day-4' })).statusCode).toBe(429);
    // Other kinds and other tenants have their own count.
    expect((await post('daily', '/v1/jobs/hold', { id: 'daily-1' })).statusCode).toBe(202);
    expect((await post('roomy', '/v1/jobs/calendar-sync', reservationRequest('roomy-day-1'))).statusCode).toBe(202);

    const { status, body } = await usage(keys.daily);
    expect(status).toBe(200);
    expect(body).toMatchObject({ tenantId: 'daily', tier: 'standard', day: new Date().toISOString().slice(0, 10) });
    expect(body.kinds['calendar-sync']).toEqual({ acceptedToday: 3, jobsPerDay: 3, waiting: 3, maxWaitingJobs: 10_000, running: 0, maxRunningJobs: 10 });
  });

  it('refuses a job beyond the waiting quota until the backlog drains, and the usage returns to zero', async () => {
    const { db } = system.testDb.database;
    await tenantLimitsRepository.update(db, 'backlogged', { overrides: { maxWaitingJobs: 2 } });
    for (const index of [1, 2]) expect((await post('backlogged', '/v1/jobs/hold', { id: `backlog-${index}` })).statusCode).toBe(202);
    const refused = await post('backlogged', '/v1/jobs/hold', { id: 'backlog-3' });
    expect(refused.statusCode).toBe(429);
    expect(JSON.parse(refused.body)).toMatchObject({ type: '/problems/quota-exceeded', quota: 'maxWaitingJobs', kind: 'hold', limit: 2, used: 2 });
    expect(refused.headers['retry-after']).toBe('5');
    expect(await jobsOf('hold', 'backlogged')).toHaveLength(2);

    await startFleet();
    await waitFor(async () => (await usage(keys.backlogged)).body.kinds.hold?.waiting === 0 && (await usage(keys.backlogged)).body.kinds.hold?.running === 0, {
      timeoutMs: 20_000,
      what: 'backlog drained',
    });
    expect((await usage(keys.backlogged)).body.kinds.hold).toMatchObject({ acceptedToday: 2, waiting: 0, running: 0, maxWaitingJobs: 2 });
    expect((await post('backlogged', '/v1/jobs/hold', { id: 'backlog-3' })).statusCode).toBe(202);
    await waitFor(async () => (await jobsOf('hold', 'backlogged')).filter((job) => job.finishedOn !== undefined).length === 3, { timeoutMs: 20_000, what: 'third job done' });
    expect((await usage(keys.backlogged)).body.kinds.hold).toMatchObject({ acceptedToday: 3, waiting: 0, running: 0 });
  });

  it('runs at most maxRunningJobs of a tenant at once across two worker processes, without spending attempts', async () => {
    const { db } = system.testDb.database;
    await tenantLimitsRepository.update(db, 'capped', { overrides: { kinds: { hold: { maxRunningJobs: 2 } } } });
    // A second fleet (its own connections): the limit is the fleet's, not a process's.
    await startFleet();
    const jobs = 16;
    // All at once: sent one by one, jobs could arrive slower than they finish (a cluster's round
    // trips are longer), and roomy would never have more than two running.
    const answers = await Promise.all(
      Array.from({ length: jobs }, (_, index) => [post('capped', '/v1/jobs/hold', { id: `capped-${index}` }), post('roomy', '/v1/jobs/hold', { id: `roomy-${index}` })]).flat(),
    );
    expect(answers.map((answer) => answer.statusCode)).toEqual(answers.map(() => 202));
    await waitFor(
      async () =>
        (await jobsOf('hold', 'capped')).every((job) => job.finishedOn !== undefined) && (await jobsOf('hold', 'roomy')).every((job) => job.finishedOn !== undefined),
      { timeoutMs: 60_000, what: 'every hold job done' },
    );
    expect(mostRunning.get('capped')).toBe(2);
    expect(mostRunning.get('roomy')).toBeGreaterThan(2);
    // The capped tenant's jobs waited for a slot, counted without a tenant label.
    const deferrals = await Promise.all(
      [system.metrics, ...workers.metrics].map((m) => metricValue(m, 'jobs_deferred_total', { queue: 'hold', reason: 'tenant-capacity', dependency: 'none' })),
    );
    expect(deferrals.reduce((sum: number, value) => sum + (value ?? 0), 0)).toBeGreaterThan(0);
    const capped = await jobsOf('hold', 'capped');
    expect(capped.map((job) => [job.returnvalue, job.attemptsMade])).toEqual(capped.map(() => [{ held: true }, 1]));
    expect((await usage(keys.capped)).body.kinds.hold).toMatchObject({ acceptedToday: jobs, waiting: 0, running: 0, maxRunningJobs: 2 });
  }, 90_000);

  it('shows a tenant its usage to its own admin and to operators only', async () => {
    expect((await usage(keys.dailyAdmin, '/v1/admin/tenants/daily/usage')).status).toBe(200);
    expect((await usage(keys.operator, '/v1/admin/tenants/daily/usage')).body.kinds['calendar-sync']).toMatchObject({ acceptedToday: 3, jobsPerDay: 3 });
    expect((await usage(keys.otherAdmin, '/v1/admin/tenants/daily/usage')).status).toBe(403);
    expect((await usage(keys.daily, '/v1/admin/tenants/daily/usage')).status).toBe(403);
    expect((await usage(keys.operator, '/v1/admin/tenants/nobody/usage')).status).toBe(404);
    expect((await usage(keys.operator, '/v1/admin/tenants/%00/usage')).status).toBe(400);
    expect((await usage(undefined)).status).toBe(401);
  });
});
