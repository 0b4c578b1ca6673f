import { createApiKey, syncStatusRepository } from '@jobfleet/db';
import { ADMIN_PASSWORD, reservation, startTestApi, type TestApi } from '../testing/harness';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Inputs that once reached Postgres unvalidated and answered 500. */
describe('the edge: ids, numbers, cursors and headers', () => {
  let api: TestApi;
  let adminKey: string;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-edge' });
    adminKey = (await createApiKey(api.testDb.database.db, { tenantId: 'acme', name: 'admin', scopes: ['fleet:admin'] })).key;
  });
  afterAll(async () => {
    await api.close();
  });

  async function expectProblem(url: string, status: number, key = api.keys.writer) {
    const answer = await api.get(url, key);
    expect(answer.statusCode).toBe(status);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    return answer;
  }

  it('a version up to 2^53 - 1 fits its column: the row holds it exactly; one more is 422 and nothing is enqueued', async () => {
    const largest = Number.MAX_SAFE_INTEGER;
    const accepted = await api.post(reservation('res-huge-version', { version: largest }));
    expect(accepted.statusCode).toBe(202);
    const row = await syncStatusRepository.get(api.testDb.database.db, 'acme', 'reservation', 'res-huge-version');
    expect(row).toMatchObject({ status: 'pending', version: largest });
    // 2147483648 was the first to break the old integer column.
    expect((await api.post(reservation('res-int4-edge', { version: 2_147_483_648 }))).statusCode).toBe(202);

    const before = await api.jobCount();
    const refused = await api.post(`{"reservationId":"res-too-big","action":"cancel","calendarId":"c","version":9007199254740993}`);
    expect(refused.statusCode).toBe(422);
    expect(await api.jobCount()).toBe(before);
    expect(await syncStatusRepository.get(api.testDb.database.db, 'acme', 'reservation', 'res-too-big')).toBeUndefined();
  });

  it.each([
    ['a NUL in a job id', '/v1/jobs/%00'],
    ['a control character in a job id', '/v1/jobs/abc%07def'],
    ['a lone surrogate in a job id', '/v1/jobs/%ED%A0%80'],
    ['a NUL in a sync entity id', '/v1/sync/reservation/%00'],
    ['a NUL in a sync kind', '/v1/sync/%00/x'],
  ])('%s is a 400 problem', async (_label, url) => {
    const answer = await api.get(url);
    expect(answer.statusCode).toBeGreaterThanOrEqual(400);
    expect(answer.statusCode).toBeLessThan(500);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it.each([
    ['a NUL in its id', { startedAt: '2026-01-01T00:00:00Z', id: '\u0000' }],
    ['year 0000', { startedAt: '0000-01-01T00:00:00Z', id: '5b1d8c34-1f0e-4a1e-9c1e-1d7c8f2a9b10' }],
    ['year 10000', { startedAt: '+010000-01-01T00:00:00Z', id: '5b1d8c34-1f0e-4a1e-9c1e-1d7c8f2a9b10' }],
  ])('a backups cursor with %s is a 400 problem', async (_label, cursor) => {
    await expectProblem(`/v1/backups?cursor=${cursorOf(cursor)}`, 400, adminKey);
  });

  it('ids longer than 100 characters resolve: the sync link of a 200-character reservation id answers', async () => {
    const id = `r${'x'.repeat(199)}`;
    const accepted = await api.post(reservation(id));
    expect(accepted.statusCode).toBe(202);
    const { links } = accepted.json<{ links: { self: string; sync: string } }>();
    expect((await api.get(links.sync)).statusCode).toBe(200);
    expect((await api.get(links.self)).statusCode).toBe(200);
  });

  it('every answer carries the security headers: the strict API policy on JSON, the page policy on /docs and Bull Board', async () => {
    const operator = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
    const answers = {
      api: await api.post(reservation('res-security-headers')),
      unrouted: await api.app.inject({ method: 'GET', url: '/nowhere' }),
      malformedUrl: await api.app.inject({ method: 'GET', url: '/v1/jobs/%zz' }),
      docs: await api.app.inject({ method: 'GET', url: '/docs' }),
      board: await api.app.inject({ method: 'GET', url: '/admin/queues', headers: { authorization: operator } }),
    };
    for (const answer of Object.values(answers)) {
      expect(answer.headers).toMatchObject({
        'x-frame-options': 'DENY',
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'strict-transport-security': expect.stringMatching(/^max-age=\d+/),
        'cross-origin-opener-policy': 'same-origin',
        'content-security-policy': expect.stringContaining("frame-ancestors 'none'"),
      });
    }
    for (const name of ['api', 'unrouted', 'malformedUrl'] as const) {
      expect(answers[name].headers['content-security-policy']).toBe("default-src 'none';base-uri 'none';form-action 'none';frame-ancestors 'none'");
    }
    expect(answers.docs.headers['content-security-policy']).toMatch(/^default-src 'self';script-src 'self';style-src 'self' 'sha256-[^']+';/);
    expect(answers.board.headers['content-security-policy']).toContain("style-src 'self' 'unsafe-inline' https://fonts.googleapis.com;");
    expect(answers.board.headers['content-security-policy']).toContain("script-src 'self';");
  });

  it.each([
    ['DELETE', '/v1/jobs/calendar-sync', 'GET, HEAD, POST'],
    ['PUT', '/v1/jobs/some-job', 'GET, HEAD'],
    ['POST', '/health/live', 'GET, HEAD'],
    ['PATCH', '/v1/admin/tenants/acme/connections/afip-issuers', 'POST'],
    ['GET', '/v1/admin/tenants/acme/connections/google', 'POST, DELETE, PATCH'],
    ['DELETE', '/admin/queues/api/queues', 'GET, HEAD'],
    ['POST', '/admin/queues/api/redis/stats', 'GET, HEAD'],
    ['DELETE', '/admin/queues/api/queues/calendar-sync/add', 'GET, HEAD, POST'],
  ])('%s %s is 405 problem with Allow: %s', async (method, url, allow) => {
    const answer = await api.app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${api.keys.writer}` } });
    expect(answer.statusCode).toBe(405);
    expect(answer.headers.allow).toBe(allow);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(answer.json()).toMatchObject({ title: 'Method Not Allowed', status: 405, detail: expect.stringContaining(allow) });
  });

  it('an unknown path stays 404, under any method, and so does a missing static file of a known prefix', async () => {
    for (const [method, url] of [['GET', '/v2/jobs'], ['DELETE', '/nowhere'], ['GET', '/docs/static/missing.js'], ['GET', '/v1/jobs/a/b']] as const) {
      const answer = await api.app.inject({ method, url });
      expect(answer.statusCode).toBe(404);
      expect(answer.headers.allow).toBeUndefined();
      expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
  });

  it("Bull Board's own errors leave as problems with their status: unknown queue, refused query, unparsable body", async () => {
    const operator = { authorization: `Bearer ${adminKey}` };
    const answers = [
      [404, await api.app.inject({ method: 'GET', url: '/admin/queues/api/queues/nope/metrics', headers: operator }), /QUEUE_NOT_FOUND/],
      [400, await api.app.inject({ method: 'GET', url: '/admin/queues/api/queues?activeQueue=calendar-sync&status=bogus', headers: operator }), /INVALID_QUERY_PARAM \(field: "status"\)/],
      [
        400,
        await api.app.inject({
          method: 'PUT',
          url: '/admin/queues/api/queues/calendar-sync/pause',
          headers: { ...operator, 'content-type': 'application/json' },
          payload: '{',
        }),
        /not valid JSON/,
      ],
    ] as const;
    for (const [status, answer, detail] of answers) {
      expect(answer.statusCode).toBe(status);
      expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(answer.json()).toEqual({ type: 'about:blank', title: expect.any(String), status, detail: expect.stringMatching(detail) });
    }
    // Query values Bull Board would choke on (it decodes activeQueue again, splits its messages
    // on NUL, takes 1e308 for a page size) are refused before it sees them; found by the fuzz as 500s.
    for (const query of ['activeQueue=%zz', 'activeQueue=%25E0', 'status=a%00b', 'page=%07', 'activeQueue=calendar-sync&jobsPerPage=1e308', 'page=1e308']) {
      const refused = await api.app.inject({ method: 'GET', url: `/admin/queues/api/queues?${query}`, headers: operator });
      expect(refused.statusCode).toBe(400);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(refused.json()).toMatchObject({ type: '/problems/validation', status: 400 });
    }
    // Its successes are untouched.
    const queues = await api.app.inject({ method: 'GET', url: '/admin/queues/api/queues?activeQueue=calendar-sync&status=latest&page=1', headers: operator });
    expect(queues.statusCode).toBe(200);
    expect(queues.headers['content-type']).toMatch(/^application\/json/);
  });

  it('authenticated answers are no-store and every answer is nosniff', async () => {
    const accepted = await api.post(reservation('res-headers'));
    expect(accepted.headers['cache-control']).toBe('no-store');
    expect(accepted.headers['x-content-type-options']).toBe('nosniff');
    const live = await api.app.inject({ method: 'GET', url: '/health/live' });
    expect(live.headers['x-content-type-options']).toBe('nosniff');
    expect(live.headers['cache-control']).toBeUndefined();
  });

  it('a body labelled with a Content-Encoding is a 415 problem, and nothing is enqueued', async () => {
    const before = await api.jobCount();
    for (const encoding of ['gzip', 'br', 'deflate, gzip']) {
      const answer = await api.post(reservation('res-encoded'), { 'content-encoding': encoding });
      expect(answer.statusCode).toBe(415);
      expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
    expect(await api.jobCount()).toBe(before);
    expect(await syncStatusRepository.get(api.testDb.database.db, 'acme', 'reservation', 'res-encoded')).toBeUndefined();
    expect((await api.post(reservation('res-identity'), { 'content-encoding': 'identity' })).statusCode).toBe(202);
  });

  it('a Content-Encoding on a Bull Board route is the same 415 problem, not a 500 from its error handler (found by the fuzz)', async () => {
    const answer = await api.app.inject({
      method: 'GET',
      url: '/admin/queues/api/queues',
      headers: { authorization: `Bearer ${adminKey}`, 'content-encoding': 'br' },
    });
    expect(answer.statusCode).toBe(415);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(answer.json()).toMatchObject({ type: '/problems/unsupported-content-encoding', status: 415 });
  });

  it('X-Request-Id: echoes a producer\'s plain request id and stores it in the job it enqueued', async () => {
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
  ])('X-Request-Id: answers a generated UUID instead of %s, and a replay under the same key stays a replay', async (_what, given) => {
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

  it('X-Request-Id is on every answer, a refusal too, and no traceresponse is sent while tracing is off', async () => {
    const refused = await api.get('/v1/jobs/no-such-job', 'not-a-key');
    expect(refused.statusCode).toBe(401);
    expect(refused.headers['x-request-id']).toMatch(UUID);
    expect(refused.headers).not.toHaveProperty('traceresponse');
  });
});

describe('/metrics behind API_METRICS_TOKEN', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-metrics-token', env: { API_METRICS_TOKEN: 'scrape-token' } });
  });
  afterAll(async () => {
    await api.close();
  });

  it('answers 401 problem with a Bearer challenge to no, another or a non-bearer credential', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token', 'Bearer scrape-token-and-more', 'Basic c2NyYXBlLXRva2Vu', `Bearer ${api.keys.operator}`]) {
      const answer = await api.app.inject({ method: 'GET', url: '/metrics', headers: authorization === undefined ? {} : { authorization } });
      expect(answer.statusCode).toBe(401);
      expect(answer.headers['www-authenticate']).toBe('Bearer realm="metrics"');
      expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(answer.json()).toMatchObject({ title: 'Unauthorized', status: 401 });
    }
  });

  it('serves the metrics to its bearer token, and leaves the probes open', async () => {
    const answer = await api.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'bearer scrape-token' } });
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toContain('http_requests_total');
    expect((await api.app.inject('/health/live')).statusCode).toBe(200);
  });
});
