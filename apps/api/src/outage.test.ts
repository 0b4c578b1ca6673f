import { beginIdempotentRequest, findIdempotencyRecordByJobId } from '@jobfleet/db';
import { jobIdFor } from '@jobfleet/queue';
import { reservation, closedPort, startTestApi, type TestApi } from './testing/harness';

describe('with Redis down', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-outage', redisUrl: `redis://127.0.0.1:${await closedPort()}` });
  });
  afterAll(async () => {
    await api.close();
  });

  it('answers a POST quickly with 503 and Retry-After, and frees the Idempotency-Key', async () => {
    const started = Date.now();
    const answer = await api.post(reservation('res-outage'), { 'idempotency-key': 'outage-1' });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(answer.statusCode).toBe(503);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(answer.headers['retry-after']).toMatch(/^\d+$/);
    expect(answer.json()).toMatchObject({ status: 503, detail: expect.stringMatching(/redis/) });

    // Not 409: the failed attempt left no in-flight record behind.
    const retry = await api.post(reservation('res-outage'), { 'idempotency-key': 'outage-1' });
    expect(retry.statusCode).toBe(503);
    await expect(findIdempotencyRecordByJobId(api.testDb.database.db, jobIdFor('acme', 'outage-1'))).resolves.toBeUndefined();
  });

  it('answers a batch with 503 and promises none of its jobs: every key is freed', async () => {
    const batch = () =>
      api.app.inject({
        method: 'POST',
        url: '/v1/jobs/calendar-sync/batch',
        headers: { authorization: `Bearer ${api.keys.writer}`, 'content-type': 'application/json' },
        payload: { jobs: [{ idempotencyKey: 'outage-batch-1', request: reservation('res-outage-1') }, { request: reservation('res-outage-2') }] },
      });
    const started = Date.now();
    const answer = await batch();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(answer.statusCode).toBe(503);
    expect(answer.headers['retry-after']).toMatch(/^\d+$/);
    expect(answer.json()).toMatchObject({ status: 503, type: '/problems/dependency-unavailable', detail: expect.stringMatching(/redis/) });

    // Not 200 with 409s: the failed batch left no in-flight record behind.
    expect((await batch()).statusCode).toBe(503);
    const { db } = api.testDb.database;
    for (const key of ['outage-batch-1', 'reservation:res-outage-2:v1']) await expect(findIdempotencyRecordByJobId(db, jobIdFor('acme', key))).resolves.toBeUndefined();
  });

  it('is not ready, naming redis, but still live', async () => {
    const ready = await api.app.inject('/health/ready');
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ status: 'unavailable', checks: { redis: { status: 'failed' }, database: { status: 'ok' } } });
    expect((await api.app.inject('/health/live')).statusCode).toBe(200);
  });

  it('answers a lookup of a known job with 503 rather than hanging', async () => {
    const jobId = 'acme-known-job';
    await beginIdempotentRequest(api.testDb.database.db, {
      tenantId: 'acme',
      scope: 'calendar-sync',
      key: 'known',
      requestHash: 'h',
      jobId,
      ttlSeconds: 60,
      staleAfterSeconds: 60,
    });
    const started = Date.now();
    const answer = await api.get(`/v1/jobs/${jobId}`);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(answer.statusCode).toBe(503);
    expect(answer.headers['retry-after']).toMatch(/^\d+$/);
  });
});
