import { schema } from '@jobfleet/db';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { eq } from 'drizzle-orm';
import { connectTestRedis } from '../../../../../tests/support/redis';
import { reservation, startTestApi, type TestApi } from '../../testing/harness';

interface JobBody {
  id: string;
  status: string;
  links: Record<string, string>;
  [field: string]: unknown;
}

describe('/v2 jobs, sync statuses and problems', () => {
  let api: TestApi;
  let redis: ReturnType<typeof connectTestRedis>;
  // Takes the queue's next job by hand, as a worker would, so each state can be set and read.
  let worker: Worker;

  const post = (path: string, body: unknown, key = api.keys.writer, headers: Record<string, string> = {}) =>
    api.app.inject({ method: 'POST', url: path, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, payload: JSON.stringify(body) });
  const enqueue = async (id: string): Promise<JobBody> => {
    const answer = await post('/v2/jobs/calendar-sync', reservation(id));
    expect(answer.statusCode).toBe(202);
    return answer.json<JobBody>();
  };
  const statusOf = async (jobId: string) => (await api.get(`/v2/jobs/${jobId}`)).json<JobBody>().status;

  async function takeNext(expectedId: string): Promise<Job> {
    const job = (await worker.getNextJob('test-token')) as Job | undefined;
    expect(job?.id).toBe(expectedId);
    return job as Job;
  }

  beforeAll(async () => {
    api = await startTestApi({ label: 'api-v2' });
    redis = connectTestRedis(api.config, 'worker', 'test-api-v2-worker');
    const queue = api.queues['calendar-sync'];
    worker = new Worker(queue.name, null, { connection: redis.forQueue(queue.name), prefix: queue.opts.prefix, autorun: false });
  });
  afterAll(async () => {
    await worker.close();
    redis.disconnect();
    await api.close();
  });

  it('maps every state of a job to the stable status: queued, running, succeeded, waiting, failed, cancelled', async () => {
    const done = await enqueue('res-v2-done');
    expect(await statusOf(done.id)).toBe('queued');
    const running = await takeNext(done.id);
    expect(await statusOf(done.id)).toBe('running');
    await running.moveToCompleted({ outcome: 'created' }, 'test-token', false);
    const succeeded = (await api.get(`/v2/jobs/${done.id}`)).json<JobBody>();
    expect(succeeded).toMatchObject({ status: 'succeeded', result: { outcome: 'created' }, error: null, attempts: 1, finishedAt: expect.any(String) });

    const retried = await enqueue('res-v2-retry');
    await (await takeNext(retried.id)).moveToFailed(new Error('CALENDAR_UNAVAILABLE: Google answered 503'), 'test-token');
    const waiting = (await api.get(`/v2/jobs/${retried.id}`)).json<JobBody>();
    expect(waiting).toMatchObject({
      status: 'waiting',
      error: { type: '/problems/job-attempt-failed', title: 'A job attempt failed', detail: 'Google answered 503', code: 'CALENDAR_UNAVAILABLE', retryable: true },
    });

    const failed = await enqueue('res-v2-fail');
    await (await takeNext(failed.id)).moveToFailed(new UnrecoverableError('CALENDAR_NOT_ALLOWED: not an allowed calendar'), 'test-token');
    expect((await api.get(`/v2/jobs/${failed.id}`)).json()).toMatchObject({ status: 'failed', error: { code: 'CALENDAR_NOT_ALLOWED', retryable: false } });

    const cancelled = await enqueue('res-v2-cancel');
    await (await takeNext(cancelled.id)).moveToFailed(new UnrecoverableError('JOB_CANCELLED: job cancelled: operator'), 'test-token');
    expect(await statusOf(cancelled.id)).toBe('cancelled');
  });

  it('answers one Job resource, from the stored status once Redis lets the job go, and expired when nothing is left', async () => {
    const accepted = await enqueue('res-v2-resource');
    const job = (await api.get(`/v2/jobs/${accepted.id}`, api.keys.reader)).json<JobBody>();
    expect(job).toEqual({
      id: accepted.id,
      kind: 'calendar-sync',
      tenantId: 'acme',
      status: 'queued',
      idempotencyKey: 'reservation:res-v2-resource:v1',
      attempts: 0,
      maxAttempts: api.config.worker.perQueue['calendar-sync']?.attempts,
      createdAt: expect.any(String),
      startedAt: null,
      finishedAt: null,
      updatedAt: job.createdAt,
      request: reservation('res-v2-resource'),
      result: null,
      error: null,
      links: { self: `/v2/jobs/${accepted.id}`, sync: '/v2/sync/reservation/res-v2-resource' },
    });

    await api.queues['calendar-sync'].remove(accepted.id);
    expect((await api.get(`/v2/jobs/${accepted.id}`)).json()).toMatchObject({ id: accepted.id, kind: 'calendar-sync', status: 'queued', request: null, attempts: 0 });
    await api.testDb.database.db.delete(schema.syncStatus).where(eq(schema.syncStatus.jobId, accepted.id));
    expect((await api.get(`/v2/jobs/${accepted.id}`)).json()).toMatchObject({ status: 'expired', links: { self: `/v2/jobs/${accepted.id}` } });
  });

  it('enqueues through the same intake as /v1: 202 with Location, and a replay across versions', async () => {
    const first = await post('/v2/jobs/calendar-sync', reservation('res-v2-intake'), api.keys.writer, { 'idempotency-key': 'v2-intake' });
    expect(first.statusCode).toBe(202);
    const body = first.json<JobBody>();
    expect(body).toEqual({
      id: expect.any(String),
      kind: 'calendar-sync',
      tenantId: 'acme',
      status: 'queued',
      idempotencyKey: 'v2-intake',
      links: { self: `/v2/jobs/${body.id}`, sync: '/v2/sync/reservation/res-v2-intake' },
    });
    expect(first.headers.location).toBe(body.links.self);
    // The same key and body on /v1 is the same request: its first answer, no second job.
    const before = await api.jobCount();
    const v1 = await api.post(reservation('res-v2-intake'), { 'idempotency-key': 'v2-intake' });
    expect(v1.headers['idempotent-replayed']).toBe('true');
    expect(v1.json()).toMatchObject({ jobId: body.id });
    const again = await post('/v2/jobs/calendar-sync', reservation('res-v2-intake'), api.keys.writer, { 'idempotency-key': 'v2-intake' });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(body);
    expect(await api.jobCount()).toBe(before);
  });

  it('takes a batch: accepted jobs as resources, refused ones with an RFC 9457 problem pointing at the job', async () => {
    const answer = await post('/v2/jobs/calendar-sync/batch', {
      jobs: [{ request: reservation('res-v2-batch-1') }, { request: reservation('res-v2-batch-2', { start: { dateTime: 'tomorrow' } }) }, { idempotencyKey: 'v2-intake', request: reservation('res-v2-intake') }],
    });
    expect(answer.statusCode).toBe(200);
    const { results } = answer.json<{ results: { index: number; job?: JobBody; problem?: Record<string, unknown> }[] }>();
    expect(results).toHaveLength(3);
    const firstId = results[0]?.job?.id ?? '';
    expect(results[0]).toEqual({
      index: 0,
      status: 202,
      replayed: false,
      job: { id: expect.any(String), kind: 'calendar-sync', tenantId: 'acme', status: 'queued', idempotencyKey: 'reservation:res-v2-batch-1:v1', links: { self: `/v2/jobs/${firstId}`, sync: '/v2/sync/reservation/res-v2-batch-1' } },
    });
    expect(results[1]).toMatchObject({
      index: 1,
      status: 422,
      problem: { type: '/problems/validation', status: 422, instance: '/v2/jobs/calendar-sync/batch#/jobs/1', errors: expect.arrayContaining([{ detail: expect.any(String), pointer: '#/start/dateTime' }]) },
    });
    expect(results[2]).toMatchObject({ index: 2, status: 202, replayed: true, job: { idempotencyKey: 'v2-intake' } });
    expect(await statusOf(firstId)).toBe('queued');
  });

  it('answers errors as RFC 9457 problems with instance and JSON pointers', async () => {
    const invalid = await post('/v2/jobs/calendar-sync', reservation('res-v2-invalid', { version: 'one', 'extra/field~': 1 }));
    expect(invalid.statusCode).toBe(422);
    expect(invalid.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(invalid.json()).toEqual({
      type: '/problems/validation',
      title: 'Unprocessable Content',
      status: 422,
      detail: 'The request body is invalid',
      instance: '/v2/jobs/calendar-sync',
      errors: expect.arrayContaining([
        { detail: expect.any(String), pointer: '#/version' },
        { detail: 'unknown field', pointer: '#/extra~1field~0' },
      ]),
    });
    const unauthenticated = await api.app.inject({ method: 'GET', url: '/v2/jobs/x?y=1' });
    expect(unauthenticated.statusCode).toBe(401);
    expect(unauthenticated.json()).toMatchObject({ type: 'about:blank', title: 'Unauthorized', status: 401, instance: '/v2/jobs/x' });
    const foreign = await api.get(`/v2/jobs/${(await enqueue('res-v2-private')).id}`, api.keys.otherTenant);
    expect(foreign.statusCode).toBe(403);
    expect((await api.get('/v2/nothing-here')).json()).toMatchObject({ status: 404, instance: '/v2/nothing-here' });
    // /v1 keeps the form it was published with.
    expect((await api.get('/v1/jobs/no-such-job')).json()).toEqual({ type: 'about:blank', title: 'Not Found', status: 404, detail: 'No job "no-such-job"' });
  });

  it("pages a tenant's sync statuses by cursor: every row once, in order, stable while rows are added", async () => {
    for (const n of [1, 2, 3, 4, 5]) await post('/v2/jobs/calendar-sync', reservation(`res-page-${n}`), api.keys.otherTenant);
    const seen: string[] = [];
    let next: string | null = '/v2/sync/reservation?limit=2';
    let pages = 0;
    while (next !== null) {
      const answer = await api.get(next, api.keys.otherTenant);
      expect(answer.statusCode).toBe(200);
      const body = answer.json<{ items: { entityId: string; links: Record<string, string> }[]; links: { self: string; next: string | null } }>();
      expect(body.links.self).toBe(next);
      seen.push(...body.items.map((item) => item.entityId));
      // A row added before the cursor is not seen; the pages go on where they were.
      if (pages === 0) await post('/v2/jobs/calendar-sync', reservation('res-page-0'), api.keys.otherTenant);
      next = body.links.next;
      pages += 1;
    }
    expect(seen).toEqual(['res-page-1', 'res-page-2', 'res-page-3', 'res-page-4', 'res-page-5']);
    expect(pages).toBe(3);
    const one = (await api.get('/v2/sync/reservation/res-page-1', api.keys.otherTenant)).json<{ jobId: string; links: Record<string, string> }>();
    expect(one).toMatchObject({ kind: 'reservation', entityId: 'res-page-1', status: 'pending', links: { self: '/v2/sync/reservation/res-page-1', job: `/v2/jobs/${one.jobId}` } });
    // Acme's rows are not globex's.
    expect((await api.get('/v2/sync/reservation/res-page-1')).statusCode).toBe(404);
    const bad = await api.get('/v2/sync/reservation?cursor=not-ours', api.keys.otherTenant);
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ instance: '/v2/sync/reservation', errors: [{ pointer: '#/cursor', detail: 'is not a cursor this API returned' }] });
    // A forged cursor of the right shape whose entity id Postgres cannot hold (NUL) is refused too, not a 500.
    const forged = Buffer.from(JSON.stringify({ entityId: 'res\u0000page' })).toString('base64url');
    const unstorable = await api.get(`/v2/sync/reservation?cursor=${forged}`, api.keys.otherTenant);
    expect(unstorable.statusCode).toBe(400);
    expect(unstorable.json()).toMatchObject({ errors: [{ pointer: '#/cursor', detail: 'is not a cursor this API returned' }] });
  });

  it('pages backup runs by cursor with next links, newest first, for operators only', async () => {
    const ids = ['0b3c1a5e-0000-4000-8000-000000000001', '0b3c1a5e-0000-4000-8000-000000000002', '0b3c1a5e-0000-4000-8000-000000000003'] as const;
    await api.testDb.database.db.insert(schema.backups).values(
      ids.map((id, n) => ({ id, schedule: 'nightly', slot: new Date(Date.UTC(2026, 10, 1 + n)), target: 'local', status: 'succeeded' as const, startedAt: new Date(Date.UTC(2026, 10, 1 + n)), jobId: `job-${n}` })),
    );
    const first = await api.get('/v2/backups?limit=2', api.keys.operator);
    expect(first.statusCode).toBe(200);
    const page1 = first.json<{ items: { id: string; links: Record<string, string> }[]; links: { self: string; next: string } }>();
    expect(page1.items.map((item) => item.id)).toEqual([ids[2], ids[1]]);
    expect(page1.items[0]?.links).toEqual({ self: `/v2/backups/${ids[2]}`, job: '/v2/jobs/job-2' });
    const page2 = (await api.get(page1.links.next, api.keys.operator)).json<{ items: { id: string }[]; links: { next: string | null } }>();
    expect(page2).toMatchObject({ items: [{ id: ids[0] }], links: { next: null } });
    expect((await api.get(`/v2/backups/${ids[0]}`, api.keys.operator)).json()).toMatchObject({ id: ids[0], status: 'succeeded', links: { self: `/v2/backups/${ids[0]}` } });
    expect((await api.get('/v2/backups', api.keys.admin)).statusCode).toBe(403);
  });
});
