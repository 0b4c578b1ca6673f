import { createApiKey } from '@jobfleet/db';
import { ADMIN_PASSWORD, reservation, startTestApi, type TestApi } from './testing/harness';

interface DeprecationsAnswer {
  since: string;
  keys: { keyId: string; tenantId: string; name: string; prefix: string; calls: number; lastSeen: string; routes: { route: string; calls: number }[] }[];
}

describe('/v1 deprecation: headers, successor links and who still calls it', () => {
  let api: TestApi;
  const basic = () => `Basic ${Buffer.from(`${api.config.api.adminUser}:${ADMIN_PASSWORD}`).toString('base64')}`;
  const deprecations = async () => {
    const answer = await api.app.inject({ method: 'GET', url: '/v1/admin/deprecations', headers: { authorization: basic() } });
    expect(answer.statusCode).toBe(200);
    return answer.json<DeprecationsAnswer>();
  };
  /** Polls the admin route until `done` holds: each flush lands within API_DEPRECATION_FLUSH_MS. */
  async function eventually(done: (answer: DeprecationsAnswer) => boolean): Promise<DeprecationsAnswer> {
    for (let tries = 0; ; tries++) {
      const answer = await deprecations();
      if (done(answer) || tries > 100) return answer;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  beforeAll(async () => {
    api = await startTestApi({
      label: 'api-deprecation',
      env: { API_V1_DEPRECATED_AT: '2026-12-01T00:00:00Z', API_V1_SUNSET_AT: '2027-06-30T23:59:59Z', API_DEPRECATION_FLUSH_MS: '50' },
    });
  });
  afterAll(async () => {
    await api.close();
  });

  it('sends Deprecation (RFC 9745), Sunset (RFC 8594) and the successor-version link on every /v1 answer', async () => {
    const accepted = await api.post(reservation('res-deprecated'));
    expect(accepted.statusCode).toBe(202);
    expect(accepted.headers.deprecation).toBe(`@${Date.UTC(2026, 11, 1) / 1000}`);
    expect(accepted.headers.sunset).toBe('Wed, 30 Jun 2027 23:59:59 GMT');
    expect(accepted.headers.link).toBe('</v2/jobs/calendar-sync>; rel="successor-version"');
    const { jobId } = accepted.json<{ jobId: string }>();

    const successors: [string, string][] = [
      [`/v1/jobs/${jobId}`, `/v2/jobs/${encodeURIComponent(jobId)}`],
      ['/v1/reservations/res-deprecated/sync', '/v2/sync/reservation/res-deprecated'],
      ['/v1/sync/reservation/res%20two', '/v2/sync/reservation/res%20two'],
      ['/v1/backups?limit=5', '/v2/backups'],
      ['/v1/usage', '/openapi/v2.json'],
      ['/v1/no-such-route', '/openapi/v2.json'],
    ];
    for (const [v1, v2] of successors) {
      const answer = await api.get(v1);
      expect([v1, answer.headers.link, answer.headers.deprecation === undefined]).toEqual([v1, `<${v2}>; rel="successor-version"`, false]);
    }
    const batch = await api.app.inject({ method: 'POST', url: '/v1/jobs/calendar-sync/batch', headers: { authorization: `Bearer ${api.keys.writer}` }, payload: { jobs: [] } });
    expect(batch.statusCode).toBe(422);
    expect(batch.headers.link).toBe('</v2/jobs/calendar-sync/batch>; rel="successor-version"');
  });

  it('sends none of them on /v2 and on unversioned routes', async () => {
    for (const url of ['/v2/sync/reservation/res-deprecated', '/v2/jobs/none', '/health/live', '/openapi/v2.json']) {
      const answer = await api.get(url);
      expect([url, answer.headers.deprecation, answer.headers.sunset, answer.headers.link]).toEqual([url, undefined, undefined, undefined]);
    }
  });

  it('counts /v1 calls per API key and route, across flushes, for operators only', async () => {
    const { db } = api.testDb.database;
    const first = await createApiKey(db, { tenantId: 'acme', name: 'legacy-pos', scopes: ['jobs:read'] });
    const second = await createApiKey(db, { tenantId: 'globex', name: 'old-backoffice', scopes: ['jobs:read'] });
    await api.get('/v1/usage', first.key);
    await api.get('/v1/usage', first.key);
    await api.get('/v1/reservations/nope/sync', first.key);
    await api.get('/v1/usage', second.key);
    // /v2 is not counted.
    await api.get('/v2/sync/reservation/nope', second.key);

    const counted = (answer: DeprecationsAnswer, keyId: string) => answer.keys.find((key) => key.keyId === keyId);
    const flushed = await eventually((answer) => counted(answer, first.id)?.calls === 3 && counted(answer, second.id)?.calls === 1);
    expect(counted(flushed, first.id)).toEqual({
      keyId: first.id,
      tenantId: 'acme',
      name: 'legacy-pos',
      prefix: first.prefix,
      revokedAt: null,
      calls: 3,
      lastSeen: expect.any(String),
      routes: [
        { route: 'GET /v1/usage', calls: 2, lastSeen: expect.any(String) },
        { route: 'GET /v1/reservations/:id/sync', calls: 1, lastSeen: expect.any(String) },
      ],
    });
    expect(counted(flushed, second.id)).toMatchObject({ tenantId: 'globex', name: 'old-backoffice', calls: 1, routes: [{ route: 'GET /v1/usage', calls: 1 }] });

    // Later calls add to what an earlier flush wrote.
    await api.get('/v1/usage', second.key);
    await api.get('/v1/usage', second.key);
    const added = await eventually((answer) => counted(answer, second.id)?.calls === 3);
    expect(counted(added, second.id)?.routes).toEqual([{ route: 'GET /v1/usage', calls: 3, lastSeen: expect.any(String) }]);
    expect(counted(added, first.id)?.calls).toBe(3);

    const tenantAdmin = await api.app.inject({ method: 'GET', url: '/v1/admin/deprecations', headers: { authorization: `Bearer ${api.keys.admin}` } });
    expect(tenantAdmin.statusCode).toBe(403);
    expect(tenantAdmin.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect((await api.app.inject({ method: 'GET', url: '/v1/admin/deprecations' })).statusCode).toBe(401);
    const operatorKey = await api.app.inject({ method: 'GET', url: '/v1/admin/deprecations?days=1', headers: { authorization: `Bearer ${api.keys.operator}` } });
    expect(operatorKey.statusCode).toBe(200);
    expect((await api.app.inject({ method: 'GET', url: '/v1/admin/deprecations?days=0', headers: { authorization: basic() } })).statusCode).toBe(400);
  });
});
