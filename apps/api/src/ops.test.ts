import { reservation, startTestApi, ADMIN_PASSWORD, type TestApi } from './testing/harness';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('health, metrics, docs and the admin board', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-ops' });
  });
  afterAll(async () => {
    await api.close();
  });

  it('is live and ready when Redis and Postgres answer', async () => {
    expect((await api.app.inject('/health/live')).statusCode).toBe(200);
    const ready = await api.app.inject('/health/ready');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({
      status: 'ok',
      checks: { redis: { status: 'ok' }, database: { status: 'ok' } },
      degraded: {},
      level: 'NORMAL',
      degradation: expect.objectContaining({ raised: [] }),
    });
  });

  it('exposes request metrics by route pattern and queue gauges', async () => {
    await api.post(reservation('res-metrics'));
    await api.get('/v1/reservations/res-metrics/sync');
    const answer = await api.app.inject('/metrics');
    expect(answer.statusCode).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/plain/);
    expect(answer.body).toMatch(/http_requests_total\{method="POST",route="\/v1\/jobs\/calendar-sync",status_code="202"\} 1/);
    expect(answer.body).toContain('route="/v1/reservations/:id/sync"');
    expect(answer.body).not.toContain('res-metrics');
    // Tenant jobs wait in BullMQ's prioritized set (their fair-share priority).
    expect(answer.body).toMatch(/queue_jobs\{queue="calendar-sync",state="prioritized"\} 1/);
  });

  it('publishes an OpenAPI 3 document of the routes with their security', async () => {
    const answer = await api.app.inject('/docs/json');
    expect(answer.statusCode).toBe(200);
    const doc = answer.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/jobs/calendar-sync',
        '/v1/jobs/{id}',
        '/v1/reservations/{id}/sync',
        '/v1/sync/{kind}/{entityId}',
        '/health/live',
        '/health/ready',
        '/metrics',
      ]),
    );
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/admin') || p.startsWith('/docs'))).toEqual([]);
    const post = doc.paths['/v1/jobs/calendar-sync'].post;
    const body = post.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(expect.arrayContaining(['reservationId', 'action', 'calendarId', 'version']));
    expect(body.additionalProperties).toBe(false);
    expect(post.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ in: 'header', name: 'idempotency-key' })]));
    expect(post.security).toEqual([{ bearerAuth: [] }, { apiKeyHeader: [] }]);
    expect(Object.keys(doc.components.securitySchemes)).toEqual(['bearerAuth', 'apiKeyHeader', 'adminBasic']);
    expect((await api.app.inject('/docs')).statusCode).toBeLessThan(400);
  });

  it('guards the admin board: 401 with a Basic challenge, 200 with the operator password or a fleet:admin key, 403 for a tenant admin', async () => {
    const anonymous = await api.app.inject('/admin/queues');
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers['www-authenticate']).toMatch(/^Basic /);
    expect(anonymous.headers['content-type']).toMatch(/^application\/problem\+json/);

    const wrong = await api.app.inject({ url: '/admin/queues', headers: { authorization: basic('admin', 'guess') } });
    expect(wrong.statusCode).toBe(401);
    const writer = await api.app.inject({ url: '/admin/queues', headers: { authorization: `Bearer ${api.keys.writer}` } });
    expect(writer.statusCode).toBe(403);

    const withBasic = await api.app.inject({
      url: '/admin/queues',
      headers: { authorization: basic(api.config.api.adminUser, ADMIN_PASSWORD) },
    });
    expect(withBasic.statusCode).toBe(200);
    expect(withBasic.headers['content-type']).toMatch(/^text\/html/);
    const withKey = await api.app.inject({ url: '/admin/queues', headers: { 'x-api-key': api.keys.operator } });
    expect(withKey.statusCode).toBe(200);
    // Bull Board shows every tenant's jobs: a tenant's own admin key is not enough.
    const tenantAdmin = await api.app.inject({ url: '/admin/queues/api/queues', headers: { 'x-api-key': api.keys.admin } });
    expect(tenantAdmin.statusCode).toBe(403);
    expect(tenantAdmin.headers['content-type']).toMatch(/^application\/problem\+json/);

    // The board's own API sits behind the same guard.
    expect((await api.app.inject('/admin/queues/api/queues')).statusCode).toBe(401);
    const queues = await api.app.inject({ url: '/admin/queues/api/queues', headers: { 'x-api-key': api.keys.operator } });
    expect(queues.statusCode).toBe(200);
    expect(JSON.stringify(queues.json())).toContain('calendar-sync');
  });
});
