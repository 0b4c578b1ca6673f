import { reservation, startTestApi, type TestApi } from '../testing/harness';

describe('POST /v1/jobs/calendar-sync and job lookups', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-jobs' });
  });
  afterAll(async () => {
    await api.close();
  });

  it('makes exactly one job of 100 concurrent POSTs with one Idempotency-Key', async () => {
    const before = await api.jobCount();
    const body = reservation('res-concurrent');
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => api.post(body, { 'idempotency-key': 'concurrent-key' })),
    );
    expect(answers.filter((a) => a.statusCode !== 202 && a.statusCode !== 409)).toEqual([]);
    const accepted = answers.filter((a) => a.statusCode === 202);
    expect(accepted.length).toBeGreaterThan(0);
    expect(new Set(accepted.map((a) => a.body)).size).toBe(1);
    expect(accepted.filter((a) => a.headers['idempotent-replayed'] === undefined)).toHaveLength(1);
    expect(accepted.filter((a) => a.headers['idempotent-replayed'] === 'true')).toHaveLength(accepted.length - 1);
    for (const conflict of answers.filter((a) => a.statusCode === 409)) {
      expect(conflict.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
    expect((await api.jobCount()) - before).toBe(1);
  });

  it('answers 202 with the job, its links and Location', async () => {
    const answer = await api.post(reservation('res-accept'), { 'idempotency-key': 'accept-1' });
    expect(answer.statusCode).toBe(202);
    const body = answer.json<{ jobId: string; links: { self: string } }>();
    expect(body).toEqual({
      jobId: expect.any(String),
      queue: 'calendar-sync',
      status: 'queued',
      idempotencyKey: 'accept-1',
      links: { self: `/v1/jobs/${body.jobId}`, sync: '/v1/reservations/res-accept/sync' },
    });
    expect(answer.headers.location).toBe(body.links.self);
    const job = await api.queues['calendar-sync'].getJob(body.jobId);
    expect(job?.data).toMatchObject({ tenantId: 'acme', idempotencyKey: 'accept-1', request: reservation('res-accept') });
  });

  it('returns the first response when the same key is replayed', async () => {
    const first = await api.post(reservation('res-replay'), { 'idempotency-key': 'replay-1' });
    // Same body with its keys in another order: the same request.
    const reordered = Object.fromEntries(Object.entries(reservation('res-replay')).reverse());
    const again = await api.post(reordered, { 'idempotency-key': 'replay-1' });
    expect(again.statusCode).toBe(first.statusCode);
    expect(again.body).toBe(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers.location).toBe(first.headers.location);
  });

  it('refuses the same key with a different body (422) and enqueues nothing', async () => {
    await api.post(reservation('res-mismatch'), { 'idempotency-key': 'mismatch-1' });
    const before = await api.jobCount();
    const other = await api.post(reservation('res-mismatch', { summary: 'Another table' }), { 'idempotency-key': 'mismatch-1' });
    expect(other.statusCode).toBe(422);
    expect(other.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(other.json()).toMatchObject({ status: 422, detail: expect.stringMatching(/different request body/) });
    expect(await api.jobCount()).toBe(before);
  });

  it('refuses a body with a lone surrogate (422), which has no canonical hash, and enqueues nothing', async () => {
    const before = await api.jobCount();
    const answer = await api.post(reservation('res-surrogate', { summary: 'Mesa \ud800 8' }), { 'idempotency-key': 'surrogate-1' });
    expect(answer.statusCode).toBe(422);
    expect(answer.json()).toMatchObject({ status: 422, detail: expect.stringMatching(/RFC 8785.*surrogate/i) });
    expect(await api.jobCount()).toBe(before);
  });

  it('derives the key from reservation and version when none is sent', async () => {
    const first = await api.post(reservation('res-derived', { version: 7 }));
    expect(first.statusCode).toBe(202);
    expect(first.json().idempotencyKey).toBe('reservation:res-derived:v7');
    const second = await api.post(reservation('res-derived', { version: 7 }));
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toBe(first.body);
    const next = await api.post(reservation('res-derived', { version: 8, action: 'update' }));
    expect(next.statusCode).toBe(202);
    expect(next.json().jobId).not.toBe(first.json().jobId);
  });

  it("shows the tenant's own waiting job with its data", async () => {
    const { jobId } = (await api.post(reservation('res-get'), { 'idempotency-key': 'get-1' })).json<{ jobId: string }>();
    const answer = await api.get(`/v1/jobs/${jobId}`, api.keys.reader);
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toMatchObject({
      id: jobId,
      queue: 'calendar-sync',
      state: 'waiting',
      attempts: 0,
      maxAttempts: api.config.worker.perQueue['calendar-sync']?.attempts,
      processedAt: null,
      finishedAt: null,
      result: null,
      error: null,
      data: { tenantId: 'acme', request: reservation('res-get') },
      links: { self: `/v1/jobs/${jobId}`, sync: '/v1/reservations/res-get/sync' },
    });
  });

  it("refuses another tenant's job (403) and answers 404 for an unknown one", async () => {
    const { jobId } = (await api.post(reservation('res-private'), { 'idempotency-key': 'private-1' })).json<{ jobId: string }>();
    const foreign = await api.get(`/v1/jobs/${jobId}`, api.keys.otherTenant);
    expect(foreign.statusCode).toBe(403);
    expect(foreign.headers['content-type']).toMatch(/^application\/problem\+json/);
    const unknown = await api.get('/v1/jobs/no-such-job');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ status: 404, title: 'Not Found' });
  });

  it('answers from the stored status once Redis no longer holds the job', async () => {
    const { jobId } = (await api.post(reservation('res-expired'), { 'idempotency-key': 'expired-1' })).json<{ jobId: string }>();
    await api.queues['calendar-sync'].remove(jobId);
    const answer = await api.get(`/v1/jobs/${jobId}`);
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toMatchObject({
      id: jobId,
      queue: 'calendar-sync',
      state: 'expired-from-queue',
      sync: { status: 'pending', version: 1, jobId },
      links: { sync: '/v1/reservations/res-expired/sync' },
    });
  });

  it('shows a pending sync row after enqueue, to its own tenant only', async () => {
    const { jobId } = (await api.post(reservation('res-sync', { version: 3 }))).json();
    const own = await api.get('/v1/reservations/res-sync/sync', api.keys.reader);
    expect(own.statusCode).toBe(200);
    expect(own.json()).toMatchObject({
      reservationId: 'res-sync',
      status: 'pending',
      version: 3,
      attempts: 0,
      lastError: null,
      externalRef: null,
      lastSyncedAt: null,
      updatedAt: expect.any(String),
      jobId,
    });
    const generic = await api.get('/v1/sync/reservation/res-sync', api.keys.reader);
    expect(generic.json()).toMatchObject({ kind: 'reservation', entityId: 'res-sync', status: 'pending', jobId });

    const foreign = await api.get('/v1/reservations/res-sync/sync', api.keys.otherTenant);
    expect(foreign.statusCode).toBe(404);
    expect(foreign.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect((await api.get('/v1/sync/invoice-of-doom/res-sync')).statusCode).toBe(404);
  });
});
