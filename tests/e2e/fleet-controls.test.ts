import { adminAuditRepository, createApiKey, featureFlagRepository, type ApiKeyScope } from '@jobfleet/db';
import { JOB_KINDS } from '@jobfleet/kinds';
import type { Job, Queue } from 'bullmq';
import { reservationRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { seedTenantsWithKeys, startTestSystem, workerFleets, type TestSystem, type WorkerFleets } from '../support/system';
import { defineTestKind } from '../support/test-kind';

/** A kind of this test that only echoes, beside calendar-sync: a paused kind must not hold up the others. */
const echo = defineTestKind('echo', async (_tenantId, request) => ({ echoed: request.id }));

const TENANTS = ['calm', 'noisy', 'canary', 'steady'] as const;
type Tenant = (typeof TENANTS)[number];

describe('kill switches and feature flags', () => {
  let system: TestSystem;
  let workers: WorkerFleets;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    system = await startTestSystem({
      label: 'controls',
      workers: false,
      extraKinds: [echo],
      // A small sample and a breaker that does not open, so the flag's own failures decide the test.
      env: { FLAG_ROLLBACK_MIN_SAMPLE: '6', CALENDAR_MAX_FAILURES: '1000', WORKER_ATTEMPTS: '3', FLEET_CONTROLS_POLL_MS: '1000' },
    });
    workers = workerFleets(system, 'controls');
    const { db } = system.testDb.database;
    const key = async (tenantId: string, scopes: ApiKeyScope[]) => (await createApiKey(db, { tenantId, name: 'controls', scopes })).key;
    Object.assign(keys, await seedTenantsWithKeys(db, TENANTS, 'controls'));
    keys.operator = await key('calm', ['fleet:admin']);
    keys.tenantAdmin = await key('calm', ['admin']);
  });
  afterAll(async () => {
    await workers.close();
    await system.close();
  });

  const startFleet = () => workers.start([...JOB_KINDS.filter((kind) => kind.name === 'calendar-sync'), echo]);


  const inject = (key: string | undefined, method: 'GET' | 'POST' | 'PUT', url: string, payload?: unknown, headers: Record<string, string> = {}) =>
    system.api.inject({ method, url, headers: { authorization: `Bearer ${key ?? ''}`, ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, payload: payload as object });
  const setSwitch = (path: string, change: Record<string, unknown>) => inject(keys.operator, 'PUT', `/v1/admin/switches/${path}`, change);
  const post = (tenantId: Tenant, url: string, payload: unknown, headers: Record<string, string> = {}) => inject(keys[tenantId], 'POST', url, payload, headers);
  const queueOf = (name: string): Queue => {
    const queue = (system.queues as Record<string, Queue | undefined>)[name];
    if (queue === undefined) throw new Error(`no queue ${name}`);
    return queue;
  };
  const jobsOf = async (queue: string, tenantId: Tenant): Promise<Job[]> =>
    (await queueOf(queue).getJobs(['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'])).filter((job) => (job.data as { tenantId: string }).tenantId === tenantId);
  const states = async (jobs: readonly Job[]) => Promise.all(jobs.map((job) => job.getState()));
  const allCompleted = async (queue: string, tenantId: Tenant, count: number) => {
    const jobs = await jobsOf(queue, tenantId);
    return jobs.length === count && (await states(jobs)).every((state) => state === 'completed');
  };

  it('answers 503 with Retry-After for a kind or tenant whose intake is off, claims and enqueues nothing, and audits the change', async () => {
    const closed = await setSwitch('kinds/calendar-sync', { intakeOff: true, reason: 'Calendar migration until 18:00 UTC' });
    expect(closed.statusCode).toBe(200);
    expect(closed.json()).toMatchObject({ scope: 'kind', subject: 'calendar-sync', intakeOff: true, processingPaused: false, updatedBy: expect.stringMatching(/^api-key:/) });

    const refused = await post('calm', '/v1/jobs/calendar-sync', reservationRequest('intake-1'), { 'idempotency-key': 'intake-1' });
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('60');
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.json()).toMatchObject({
      type: '/problems/intake-disabled',
      status: 503,
      detail: 'Intake of calendar-sync jobs is switched off: Calendar migration until 18:00 UTC; retry later',
      switch: { scope: 'kind', subject: 'calendar-sync' },
    });
    const batch = await post('calm', '/v1/jobs/calendar-sync/batch', { jobs: [{ request: reservationRequest('intake-2') }] });
    expect(batch.statusCode).toBe(503);
    expect(batch.json()).toMatchObject({ type: '/problems/intake-disabled' });
    // Other kinds stay open.
    expect((await post('calm', '/v1/jobs/echo', { id: 'open-1' })).statusCode).toBe(202);

    expect((await setSwitch('kinds/calendar-sync', { intakeOff: false })).statusCode).toBe(200);
    // The key was never claimed: the same request is now accepted as new, not replayed nor in flight.
    const accepted = await post('calm', '/v1/jobs/calendar-sync', reservationRequest('intake-1'), { 'idempotency-key': 'intake-1' });
    expect(accepted.statusCode).toBe(202);
    expect(accepted.headers['idempotent-replayed']).toBeUndefined();
    expect(await jobsOf('calendar-sync', 'calm')).toHaveLength(1);

    expect((await setSwitch('tenants/noisy', { intakeOff: true })).statusCode).toBe(200);
    const noisy = await post('noisy', '/v1/jobs/echo', { id: 'noisy-1' });
    expect(noisy.statusCode).toBe(503);
    expect(noisy.json()).toMatchObject({ type: '/problems/intake-disabled', detail: 'Intake of the jobs of tenant noisy is switched off; retry later', switch: { scope: 'tenant', subject: 'noisy' } });
    expect((await post('calm', '/v1/jobs/echo', { id: 'calm-2' })).statusCode).toBe(202);
    expect(await jobsOf('echo', 'noisy')).toHaveLength(0);
    expect((await setSwitch('tenants/noisy', { intakeOff: false })).statusCode).toBe(200);

    const audit = await adminAuditRepository.list(system.testDb.database.db, { action: 'switch.set', limit: 10 });
    expect(audit).toHaveLength(4);
    expect(audit.at(-1)).toMatchObject({
      actor: expect.stringMatching(/^api-key:/),
      actorTenantId: 'calm',
      target: { scope: 'kind', subject: 'calendar-sync' },
      detail: { before: null, after: { intakeOff: true, processingPaused: false, reason: 'Calendar migration until 18:00 UTC' } },
    });
    expect(audit[0]).toMatchObject({ tenantId: 'noisy', detail: { before: { intakeOff: true }, after: { intakeOff: false } } });
  });

  it('lets only fleet operators change switches and flags, and refuses unknown kinds and tenants', async () => {
    expect((await inject(keys.tenantAdmin, 'PUT', '/v1/admin/switches/kinds/echo', { intakeOff: true })).statusCode).toBe(403);
    expect((await inject(keys.calm, 'GET', '/v1/admin/flags')).statusCode).toBe(403);
    expect((await setSwitch('kinds/no-such-kind', { intakeOff: true })).statusCode).toBe(400);
    expect((await setSwitch('tenants/nobody', { intakeOff: true })).statusCode).toBe(404);
    expect((await setSwitch('kinds/echo', {})).statusCode).toBe(422);
    const badFlag = await inject(keys.operator, 'PUT', '/v1/admin/flags/some.flag', { enabled: true, variants: { on: true }, rolloutVariant: 'on', defaultVariant: 'off', killVariant: 'off' });
    expect(badFlag.statusCode).toBe(422);
    expect(badFlag.json<{ errors: { path: string }[] }>().errors.map((error) => error.path)).toEqual(['defaultVariant', 'killVariant']);
    expect((await post('calm', '/v1/jobs/echo', { id: 'still-open' })).statusCode).toBe(202);
  });

  it('holds a paused kind and a paused tenant back without spending attempts, runs the rest, and runs them all after resume', async () => {
    expect((await setSwitch('kinds/echo', { processingPaused: true })).statusCode).toBe(200);
    expect((await setSwitch('tenants/noisy', { processingPaused: true })).statusCode).toBe(200);
    // Two worker processes' worth of workers: the switches hold in each.
    await startFleet();
    await startFleet();
    for (const index of [1, 2, 3]) {
      expect((await post('noisy', '/v1/jobs/calendar-sync', reservationRequest(`noisy-${index}`))).statusCode).toBe(202);
      expect((await post('steady', '/v1/jobs/calendar-sync', reservationRequest(`steady-${index}`))).statusCode).toBe(202);
      expect((await post('steady', '/v1/jobs/echo', { id: `steady-${index}` })).statusCode).toBe(202);
    }
    // Another tenant's jobs of the same kind run meanwhile.
    await waitFor(() => allCompleted('calendar-sync', 'steady', 3), { timeoutMs: 30_000, what: "steady's calendar jobs completed" });
    const noisyJobs = await jobsOf('calendar-sync', 'noisy');
    expect(noisyJobs).toHaveLength(3);
    await waitFor(async () => (await states(await jobsOf('calendar-sync', 'noisy'))).every((state) => state === 'delayed'), { timeoutMs: 15_000, what: "noisy's jobs put back" });
    expect((await jobsOf('calendar-sync', 'noisy')).map((job) => job.attemptsMade)).toEqual([0, 0, 0]);
    // The paused kind's jobs are not even taken: the echo worker is paused.
    expect(workers.fleets.map((fleet) => fleet.workers.get('echo')?.isPaused())).toEqual([true, true]);
    expect(workers.fleets.map((fleet) => fleet.workers.get('calendar-sync')?.isPaused())).toEqual([false, false]);
    expect((await states(await jobsOf('echo', 'steady'))).every((state) => state === 'waiting' || state === 'prioritized')).toBe(true);
    expect(system.calendar.listEvents().filter((event) => event.summary?.startsWith('Reservation noisy'))).toHaveLength(0);

    expect((await setSwitch('kinds/echo', { processingPaused: false })).statusCode).toBe(200);
    expect((await setSwitch('tenants/noisy', { processingPaused: false })).statusCode).toBe(200);
    await waitFor(() => allCompleted('echo', 'steady', 3), { timeoutMs: 20_000, what: 'echo jobs completed after resume' });
    expect(workers.fleets.map((fleet) => fleet.workers.get('echo')?.isPaused())).toEqual([false, false]);
    await waitFor(() => allCompleted('calendar-sync', 'noisy', 3), { timeoutMs: 20_000, what: "noisy's jobs completed after resume" });
    expect((await jobsOf('calendar-sync', 'noisy')).map((job) => job.attemptsMade)).toEqual([1, 1, 1]);
  });

  it('rolls a flag back on its own when its variant fails the jobs of the one tenant it is on for, leaving the other tenants untouched', async () => {
    const { db } = system.testDb.database;
    const calendars = { canary: 'canary-cal', steady: 'steady-cal' } as const;
    const reservation = (tenantId: 'canary' | 'steady', index: number, version: number) =>
      reservationRequest(`${tenantId}-r${index}`, version, { calendarId: calendars[tenantId], action: version === 1 ? 'create' : 'update', summary: `${tenantId} r${index} v${version}` });
    const indexes = [1, 2, 3, 4];
    for (const tenantId of ['canary', 'steady'] as const) {
      for (const index of indexes) expect((await post(tenantId, '/v1/jobs/calendar-sync', reservation(tenantId, index, 1))).statusCode).toBe(202);
    }
    await waitFor(async () => system.calendar.listEvents(calendars.canary).length === 4 && system.calendar.listEvents(calendars.steady).length === 4, {
      timeoutMs: 30_000,
      what: 'the events created',
    });

    const flag = { description: 'updates patch only the changed fields', enabled: true, variants: { on: true, off: false }, rolloutVariant: 'on', defaultVariant: 'off', killVariant: 'off', tenants: ['canary'] };
    const put = await inject(keys.operator, 'PUT', '/v1/admin/flags/calendar-sync.minimal-patch', flag);
    expect(put.statusCode).toBe(200);
    // The gated path meets a Calendar that fails its patches (those of canary's calendar).
    system.calendar.setOutage({ status: 503 }, { method: 'PATCH', calendarId: calendars.canary });
    for (const tenantId of ['canary', 'steady'] as const) {
      for (const index of indexes) expect((await post(tenantId, '/v1/jobs/calendar-sync', reservation(tenantId, index, 2))).statusCode).toBe(202);
    }

    const rolledBack = await waitFor(async () => {
      const stored = await featureFlagRepository.find(db, 'calendar-sync.minimal-patch');
      return stored?.enabled === false && stored;
    }, { timeoutMs: 30_000, what: 'the flag rolled back' });
    expect(rolledBack.disabledReason).toMatch(/^variant "on" failed \d+ of \d+ job attempts \(\d+\.\d%, over 20%\) within 300 s$/);
    expect(rolledBack.updatedBy).toBe('system:flag-rollback');
    const [audit] = await adminAuditRepository.list(db, { action: 'flag.rollback', limit: 10 });
    expect(audit).toMatchObject({ actor: 'system:flag-rollback', actorTenantId: null, target: { flag: 'calendar-sync.minimal-patch' }, detail: { variant: 'on', threshold: 0.2, windowMs: 300_000, minSample: 6 } });
    expect((audit?.detail as { sample: number }).sample).toBeGreaterThanOrEqual(6);
    expect((audit?.detail as { ratio: number }).ratio).toBeGreaterThan(0.2);
    // One process rolled it back, once.
    const rollbacks = async () =>
      (await Promise.all(workers.metrics.map((metrics) => metrics.featureFlagRollbacks.get()))).flatMap((metric) => metric.values).filter((sample) => sample.value > 0);
    expect(await rollbacks()).toEqual([expect.objectContaining({ labels: { flag: 'calendar-sync.minimal-patch' }, value: 1 })]);

    // The other tenant was served the old path all along: every update completed.
    await waitFor(() => allCompleted('calendar-sync', 'steady', 3 + 8), { timeoutMs: 30_000, what: "steady's updates completed" });
    expect(system.calendar.listEvents(calendars.steady).map((event) => event.summary).sort()).toEqual(indexes.map((index) => `steady r${index} v2`));
    // Canary's failing updates run out of attempts (else one still retrying could race a newer update of its event).
    await waitFor(async () => (await states((await jobsOf('calendar-sync', 'canary')).filter((job) => (job.data as { request: { version: number } }).request.version === 2))).every((state) => state === 'failed'), {
      timeoutMs: 30_000,
      what: "canary's updates failed for good",
    });
    // Once Calendar patches again, canary's later updates take the old path (the kill variant) and complete.
    system.calendar.setOutage(null);
    for (const index of indexes) expect((await post('canary', '/v1/jobs/calendar-sync', reservation('canary', index, 3))).statusCode).toBe(202);
    await waitFor(() => system.calendar.listEvents(calendars.canary).every((event) => event.summary?.endsWith('v3')), { timeoutMs: 30_000, what: "canary's updates applied" });
    expect(await rollbacks()).toHaveLength(1);
  });
});
