import { adminAuditRepository, createApiKey, createTenant, jobRepository, syncStatusRepository, type ApiKeyScope, type JobRow } from '@jobfleet/db';
import type { LightMyRequestResponse } from 'fastify';
import { invoiceRequest, reservationRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { seedTenantConnections, startTestSystem, type TestSystem } from '../support/system';

const QUEUE = 'calendar-sync';
const OTHER_TENANT = 'tenant-e2e-job-admin-other';

interface JobView {
  kind: string;
  id: string;
  tenantId: string | null;
  state: string;
  attempts: number;
  businessKey: string | null;
  idempotencyKey: string | null;
  lastError: { code: string; message: string } | null;
  queueState?: string;
  previousState?: string;
  attemptHistory?: { run: number; attempt: number; workerId: string; outcome: string; error: { code: string } | null; finishedAt: string | null }[];
}
interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

// The job admin API through the whole fleet: jobs accepted by the API, run by real workers against
// the fake Calendar and AFIP simulator, listed and acted on from Postgres and Redis.
describe('the job admin API', () => {
  let system: TestSystem;
  const keys: Record<'operator' | 'tenantAdmin' | 'otherAdmin' | 'otherWriter', string> = { operator: '', tenantAdmin: '', otherAdmin: '', otherWriter: '' };

  beforeAll(async () => {
    system = await startTestSystem({
      label: 'e2e-job-admin',
      env: {
        // A retried job stays delayed long enough to act on; the tests promote it.
        JOBS_BACKOFF_DELAY_MS: '60000',
        CALENDAR_SYNC_ATTEMPTS: '3',
        // Every Calendar fault reaches the attempt policy, none is retried inside the call.
        DEPENDENCY_RETRIES: '0',
        ADMIN_BULK_RETRY_MAX: '3',
      },
    });
    const { db } = system.testDb.database;
    await createTenant(db, { id: OTHER_TENANT, name: 'other' });
    await seedTenantConnections(db, OTHER_TENANT, { cuits: [] });
    const key = async (tenantId: string, scopes: ApiKeyScope[]) => (await createApiKey(db, { tenantId, name: 'test', scopes })).key;
    keys.operator = await key(system.tenantId, ['fleet:admin']);
    keys.tenantAdmin = await key(system.tenantId, ['admin']);
    keys.otherAdmin = await key(OTHER_TENANT, ['admin']);
    keys.otherWriter = await key(OTHER_TENANT, ['jobs:write', 'jobs:read']);
  });
  afterAll(async () => {
    await system.close();
  });

  const call = (method: 'GET' | 'POST', url: string, key: string, body?: unknown): Promise<LightMyRequestResponse> =>
    system.api.inject({
      method,
      url,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
  const enqueue = async (kind: string, request: unknown, key = system.apiKey, idempotencyKey?: string): Promise<string> => {
    const answer = await system.api.inject({
      method: 'POST',
      url: `/v1/jobs/${kind}`,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...(idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }) },
      payload: JSON.stringify(request),
    });
    expect(answer.statusCode).toBe(202);
    return answer.json<{ jobId: string }>().jobId;
  };
  const tenantJobs = () => `/v1/admin/tenants/${system.tenantId}/jobs`;
  const row = (jobId: string, kind = QUEUE) => jobRepository.get(system.testDb.database.db, kind, jobId);
  const rowIn = (jobId: string, state: string, kind = QUEUE): Promise<JobRow> =>
    waitFor(
      async () => {
        const found = await row(jobId, kind);
        return found?.state === state ? found : undefined;
      },
      { timeoutMs: 20_000, what: `job ${jobId} ${state} in Postgres` },
    );
  const inRedis = (jobId: string, state: string) =>
    waitFor(async () => (await system.queues[QUEUE].getJobState(jobId)) === state, { timeoutMs: 20_000, what: `job ${jobId} ${state} in Redis` });
  const detail = async (jobId: string, key = keys.operator): Promise<JobView> => {
    const answer = await call('GET', `/v1/admin/jobs/${QUEUE}/${jobId}`, key);
    expect(answer.statusCode).toBe(200);
    return answer.json<JobView>();
  };
  const audit = (action: string) => adminAuditRepository.list(system.testDb.database.db, { action, limit: 100 });

  it('keeps a job findable by id, idempotency key and reservationId after Redis dropped it', async () => {
    const jobId = await enqueue(QUEUE, reservationRequest('res-admin-find'), system.apiKey, 'key-admin-find');
    await rowIn(jobId, 'completed');
    // As retention does, later: Redis forgets the job.
    await (await system.queues[QUEUE].getJob(jobId))?.remove();

    for (const query of [`id=${jobId}`, 'idempotencyKey=key-admin-find', 'businessKey=res-admin-find']) {
      const page = (await call('GET', `/v1/admin/jobs?${query}`, keys.operator)).json<Page<JobView>>();
      expect(page.items).toEqual([
        expect.objectContaining({ id: jobId, kind: QUEUE, tenantId: system.tenantId, state: 'completed', attempts: 1, businessKey: 'res-admin-find', idempotencyKey: 'key-admin-find' }),
      ]);
    }
    const found = await detail(jobId);
    expect(found.queueState).toBe('expired-from-queue');
    expect(found.attemptHistory).toEqual([expect.objectContaining({ run: 1, attempt: 1, outcome: 'completed', error: null, workerId: system.config.worker.id })]);

    // Nothing left to retry: 410, and nothing recorded.
    const retry = await call('POST', `/v1/admin/jobs/${QUEUE}/${jobId}/retry`, keys.operator);
    expect(retry.statusCode).toBe(410);
    expect(retry.json()).toMatchObject({ type: '/problems/job-expired-from-queue', state: 'completed' });
    expect((await audit('job.retry')).filter((entry) => entry.target.jobId === jobId)).toEqual([]);
  });

  it('finds an AFIP invoice job by its invoiceId', async () => {
    const jobId = await enqueue('afip-sync', invoiceRequest('inv-admin-find'));
    await rowIn(jobId, 'completed', 'afip-sync');
    const page = (await call('GET', '/v1/admin/jobs?kind=afip-sync&businessKey=inv-admin-find', keys.operator)).json<Page<JobView>>();
    expect(page.items.map((job) => job.id)).toEqual([jobId]);
  });

  it('records each attempt: a 503 once, then (promoted) a success', async () => {
    system.calendar.failNext(1, { status: 503 });
    const jobId = await enqueue(QUEUE, reservationRequest('res-admin-history'));
    await inRedis(jobId, 'delayed');
    const delayed = await rowIn(jobId, 'delayed');
    expect(delayed.lastError).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });

    const promoted = await call('POST', `/v1/admin/jobs/${QUEUE}/${jobId}/promote`, keys.operator);
    expect(promoted.statusCode).toBe(200);
    expect(promoted.json()).toMatchObject({ state: 'waiting', previousState: 'delayed' });
    await rowIn(jobId, 'completed');

    const history = (await detail(jobId)).attemptHistory ?? [];
    expect(history.map(({ run, attempt, outcome, error }) => ({ run, attempt, outcome, code: error?.code ?? null }))).toEqual([
      { run: 1, attempt: 1, outcome: 'retried', code: 'DEPENDENCY_UNAVAILABLE' },
      { run: 2, attempt: 2, outcome: 'completed', code: null },
    ]);
    expect(history.every((run) => run.finishedAt !== null)).toBe(true);
    expect((await row(jobId))?.lastError).toBeNull();
    const [entry] = (await audit('job.promote')).filter((e) => e.target.jobId === jobId);
    expect(entry).toMatchObject({ actorTenantId: system.tenantId, tenantId: system.tenantId, detail: { from: 'delayed', to: 'waiting' } });
    expect(entry?.actor).toMatch(/^api-key:/);

    // A completed job is not retried, nor promoted: 409 with its state.
    const again = await call('POST', `/v1/admin/jobs/${QUEUE}/${jobId}/retry`, keys.operator);
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ type: '/problems/job-state-conflict', state: 'completed' });
    expect((await call('POST', `/v1/admin/jobs/${QUEUE}/${jobId}/promote`, keys.operator)).statusCode).toBe(409);
    expect((await call('POST', `/v1/admin/jobs/${QUEUE}/${jobId}/cancel`, keys.operator)).statusCode).toBe(409);
    expect(await system.queues[QUEUE].getJobState(jobId)).toBe('completed');
  });

  it('retries a failed job, which then completes; the sync status follows', async () => {
    system.calendar.failNext(1, { status: 403, reason: 'forbidden' });
    const jobId = await enqueue(QUEUE, reservationRequest('res-admin-retry'));
    const failed = await rowIn(jobId, 'failed');
    expect(failed).toMatchObject({ attempts: 1, lastError: { code: 'CALENDAR_FORBIDDEN' } });

    // The tenant's own admin key may retry its tenant's job.
    const retried = await call('POST', `${tenantJobs()}/${QUEUE}/${jobId}/retry`, keys.tenantAdmin);
    expect(retried.statusCode).toBe(200);
    expect(retried.json()).toMatchObject({ previousState: 'failed', state: 'waiting' });
    await rowIn(jobId, 'completed');
    const status = await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', 'res-admin-retry');
    expect(status?.status).toBe('synced');
    const [entry] = (await audit('job.retry')).filter((e) => e.target.jobId === jobId);
    expect(entry).toMatchObject({ actorTenantId: system.tenantId, tenantId: system.tenantId, detail: { from: 'failed' } });
  });

  it('cancels a waiting job and a delayed one: gone from Redis, cancelled in Postgres, the waiting quota given back', async () => {
    // The queue itself is paused, not the worker: a worker's fetch already under way when it is
    // paused can still take the next job, which would then be active, not waiting.
    const queue = system.queues[QUEUE];
    await queue.pause();
    try {
      const waitingId = await enqueue(QUEUE, reservationRequest('res-admin-cancel-waiting'));
      const usage = async () => (await call('GET', '/v1/usage', system.apiKey)).json<{ kinds: Record<string, { waiting: number }> }>().kinds[QUEUE]?.waiting;
      const waitingBefore = await usage();
      const cancelled = await call('POST', `/v1/admin/jobs/${QUEUE}/${waitingId}/cancel`, keys.operator);
      expect(cancelled.statusCode).toBe(200);
      expect(cancelled.json()).toMatchObject({ state: 'cancelled', previousState: 'waiting' });
      expect(await system.queues[QUEUE].getJob(waitingId)).toBeUndefined();
      expect(await usage()).toBe((waitingBefore ?? 0) - 1);
      expect((await row(waitingId))?.state).toBe('cancelled');
      const status = await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', 'res-admin-cancel-waiting');
      expect(status?.status).toBe('cancelled');
      // Cancelled is not cancelled twice: the job is gone.
      expect((await call('POST', `/v1/admin/jobs/${QUEUE}/${waitingId}/cancel`, keys.operator)).statusCode).toBe(410);
    } finally {
      await queue.resume();
    }

    system.calendar.failNext(1, { status: 503 });
    const delayedId = await enqueue(QUEUE, reservationRequest('res-admin-cancel-delayed'));
    await inRedis(delayedId, 'delayed');
    await rowIn(delayedId, 'delayed');
    const cancelled = await call('POST', `/v1/admin/jobs/${QUEUE}/${delayedId}/cancel`, keys.operator);
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.json()).toMatchObject({ previousState: 'delayed' });
    expect(await system.queues[QUEUE].getJob(delayedId)).toBeUndefined();
    expect((await row(delayedId))?.state).toBe('cancelled');
    expect((await audit('job.cancel')).map((e) => e.target.jobId)).toEqual(expect.arrayContaining([delayedId]));
  });

  it('answers 404 for an unknown job and 400 for a bad filter', async () => {
    expect((await call('GET', `/v1/admin/jobs/${QUEUE}/no-such-job`, keys.operator)).statusCode).toBe(404);
    expect((await call('GET', '/v1/admin/jobs/no-such-kind/x', keys.operator)).statusCode).toBe(404);
    expect((await call('POST', `/v1/admin/jobs/${QUEUE}/no-such-job/retry`, keys.operator)).statusCode).toBe(404);
    expect((await call('GET', '/v1/admin/jobs?state=exploded', keys.operator)).statusCode).toBe(400);
    expect((await call('GET', '/v1/admin/jobs?cursor=forged', keys.operator)).statusCode).toBe(400);
    // A cursor of the right shape whose text Postgres cannot hold (NUL, a lone surrogate): 400, not a 500.
    for (const position of [{ kind: QUEUE, id: 'a\u0000b' }, { kind: 'calendar\ud800', id: 'x' }]) {
      const forged = Buffer.from(JSON.stringify({ createdAt: new Date().toISOString(), ...position })).toString('base64url');
      expect((await call('GET', `/v1/admin/jobs?cursor=${forged}`, keys.operator)).statusCode).toBe(400);
    }
    expect((await call('GET', `${tenantJobs()}?tenant=${OTHER_TENANT}`, keys.tenantAdmin)).statusCode).toBe(400);
    // Operators only fleet-wide: a tenant's admin key is refused there.
    expect((await call('GET', '/v1/admin/jobs', keys.tenantAdmin)).statusCode).toBe(403);
  });

  it('keeps tenants apart: another tenant\'s job is unknown (404), another tenant\'s routes refused (403)', async () => {
    const otherJob = await enqueue(QUEUE, reservationRequest('res-admin-other'), keys.otherWriter);
    await rowIn(otherJob, 'completed');
    // Our admin key, through our tenant's routes, knows nothing of it.
    expect((await call('GET', `${tenantJobs()}/${QUEUE}/${otherJob}`, keys.tenantAdmin)).statusCode).toBe(404);
    expect((await call('POST', `${tenantJobs()}/${QUEUE}/${otherJob}/retry`, keys.tenantAdmin)).statusCode).toBe(404);
    const ours = (await call('GET', `${tenantJobs()}?limit=100`, keys.tenantAdmin)).json<Page<JobView>>();
    expect(ours.items.length).toBeGreaterThan(0);
    expect(ours.items.every((job) => job.tenantId === system.tenantId)).toBe(true);
    expect((await call('GET', `${tenantJobs()}?businessKey=res-admin-other`, keys.tenantAdmin)).json<Page<JobView>>().items).toEqual([]);
    // The other tenant's admin key may not use our tenant's routes at all.
    expect((await call('GET', tenantJobs(), keys.otherAdmin)).statusCode).toBe(403);
    expect((await call('GET', `/v1/admin/tenants/${system.tenantId}/audit`, keys.otherAdmin)).statusCode).toBe(403);
    // Its own tenant's audit holds none of ours.
    const otherAudit = (await call('GET', `/v1/admin/tenants/${OTHER_TENANT}/audit`, keys.otherAdmin)).json<Page<{ tenantId: string }>>();
    expect(otherAudit.items).toEqual([]);
  });

  it('pages through jobs newest first with filters, each job once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const answer: LightMyRequestResponse = await call('GET', `/v1/admin/jobs?kind=${QUEUE}&tenant=${system.tenantId}&limit=2${cursor ? `&cursor=${cursor}` : ''}`, keys.operator);
      expect(answer.statusCode).toBe(200);
      const page: Page<JobView> = answer.json();
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((job) => job.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null);
    const all = await jobRepository.list(system.testDb.database.db, { kind: QUEUE, tenantId: system.tenantId }, { limit: 1000 });
    expect(seen).toEqual(all.map((job) => job.id));
    expect(new Set(seen).size).toBe(seen.length);
    expect(pages).toBeGreaterThan(1);

    const cancelled = (await call('GET', `/v1/admin/jobs?state=cancelled&tenant=${system.tenantId}`, keys.operator)).json<Page<JobView>>();
    expect(cancelled.items.map((job) => job.businessKey).sort()).toEqual(['res-admin-cancel-delayed', 'res-admin-cancel-waiting']);
    const future = (await call('GET', `/v1/admin/jobs?createdFrom=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, keys.operator)).json<Page<JobView>>();
    expect(future.items).toEqual([]);
  });

  it('bulk-retries failed jobs by filter: a dry-run count, a cap, then the retry, audited with its filter', async () => {
    const since = new Date().toISOString();
    system.calendar.failNext(3, { status: 403, reason: 'forbidden' });
    const failedIds: string[] = [];
    for (const id of ['res-bulk-1', 'res-bulk-2', 'res-bulk-3']) failedIds.push(await enqueue(QUEUE, reservationRequest(id)));
    for (const jobId of failedIds) await rowIn(jobId, 'failed');
    const filter = { kind: QUEUE, tenant: system.tenantId, createdFrom: since };

    const dryRun = await call('POST', '/v1/admin/jobs/retry', keys.operator, { filter, dryRun: true });
    expect(dryRun.statusCode).toBe(200);
    expect(dryRun.json()).toEqual({ dryRun: true, matched: 3, max: 3 });
    const overCap = await call('POST', '/v1/admin/jobs/retry', keys.operator, { filter, max: 2 });
    expect(overCap.statusCode).toBe(422);
    expect(overCap.json()).toMatchObject({ type: '/problems/bulk-retry-over-cap', matched: 3, max: 2 });
    // max may lower the configured cap, never raise it.
    expect((await call('POST', '/v1/admin/jobs/retry', keys.operator, { filter, max: 4 })).statusCode).toBe(422);
    for (const jobId of failedIds) expect((await row(jobId))?.state).toBe('failed');

    const done = await call('POST', '/v1/admin/jobs/retry', keys.operator, { filter });
    expect(done.statusCode).toBe(200);
    expect(done.json()).toEqual({ dryRun: false, matched: 3, retried: 3, skipped: [] });
    for (const jobId of failedIds) await rowIn(jobId, 'completed');

    const [entry] = await audit('jobs.bulk-retry');
    expect(entry).toMatchObject({ tenantId: system.tenantId, filter: { ...filter, state: 'failed' }, detail: { matched: 3, retried: 3, skipped: 0, max: 3 } });
    expect((entry?.target.jobs as { jobId: string }[]).map((job) => job.jobId).sort()).toEqual([...failedIds].sort());

    // The audit is readable: fleet-wide by action, and by the tenant's own admin.
    const fleetAudit = (await call('GET', '/v1/admin/audit?action=jobs.bulk-retry', keys.operator)).json<Page<{ action: string }>>();
    expect(fleetAudit.items.map((item) => item.action)).toEqual(['jobs.bulk-retry']);
    const tenantAudit = (await call('GET', `/v1/admin/tenants/${system.tenantId}/audit?limit=1`, keys.tenantAdmin)).json<Page<{ action: string }>>();
    expect(tenantAudit.items).toHaveLength(1);
    expect(tenantAudit.nextCursor).not.toBeNull();
    const next = (await call('GET', `/v1/admin/tenants/${system.tenantId}/audit?cursor=${tenantAudit.nextCursor ?? ''}`, keys.tenantAdmin)).json<Page<{ action: string }>>();
    expect(next.items.map((item) => item.action)).toEqual(expect.arrayContaining(['job.retry', 'job.promote', 'job.cancel']));
  });
});
