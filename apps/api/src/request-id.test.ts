import { reservation, startTestApi, type TestApi } from './testing/harness';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('X-Request-Id', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-request-id' });
  });
  afterAll(async () => {
    await api.close();
  });

  it('echoes a producer\'s plain request id and stores it in the job it enqueued', async () => {
    const answer = await api.post(reservation('res-request-id'), { 'x-request-id': 'checkout-42.a:b' });
    expect(answer.statusCode).toBe(202);
    expect(answer.headers['x-request-id']).toBe('checkout-42.a:b');
    const job = await api.queues['calendar-sync'].getJob((JSON.parse(answer.body) as { jobId: string }).jobId);
    expect(job?.data).toMatchObject({ requestId: 'checkout-42.a:b', request: { reservationId: 'res-request-id' } });
  });

  it.each([
    ['one that is too long', 'x'.repeat(129)],
    ['one with spaces and quotes', 'a b"c'],
    ['an empty one', ''],
  ])('answers a generated UUID instead of %s, and a replay under the same key stays a replay', async (_what, given) => {
    const key = `request-id-${given.length}`;
    const first = await api.post(reservation(`res-${key}`), { 'idempotency-key': key, 'x-request-id': given });
    expect(first.statusCode).toBe(202);
    expect(first.headers['x-request-id']).toMatch(UUID);
    // Another request id, same key and body: the stored answer, since the id is outside the hashed request.
    const replay = await api.post(reservation(`res-${key}`), { 'idempotency-key': key });
    expect(replay.statusCode).toBe(202);
    expect(replay.body).toBe(first.body);
    expect(replay.headers['x-request-id']).toMatch(UUID);
    expect(replay.headers['x-request-id']).not.toBe(first.headers['x-request-id']);
  });

  it('is on every answer, a refusal too, and no traceresponse is sent while tracing is off', async () => {
    const refused = await api.get('/v1/jobs/no-such-job', 'not-a-key');
    expect(refused.statusCode).toBe(401);
    expect(refused.headers['x-request-id']).toMatch(UUID);
    expect(refused.headers).not.toHaveProperty('traceresponse');
  });
});
