import { createApiKey, tenantLimitsRepository } from '@jobfleet/db';
import { QUEUE_NAMES } from '@jobfleet/kinds';
import type { LightMyRequestResponse } from 'fastify';
import { startTestApi, type TestApi } from '../testing/harness';

describe('GET and PUT /v1/admin/tenants/:id/limits', () => {
  let api: TestApi;
  let globexAdmin: string;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-tenant-limits' });
    globexAdmin = (await createApiKey(api.testDb.database.db, { tenantId: 'globex', name: 'admin', scopes: ['admin'] })).key;
  });
  afterAll(async () => {
    await api.close();
  });

  const put = (tenantId: string, body: unknown, key = api.keys.operator): Promise<LightMyRequestResponse> =>
    api.app.inject({
      method: 'PUT',
      url: `/v1/admin/tenants/${tenantId}/limits`,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });

  it("shows its own admin the tenant's tier, overrides and effective limits for every job kind", async () => {
    const answer = await api.get('/v1/admin/tenants/acme/limits', api.keys.admin);
    expect(answer.statusCode).toBe(200);
    const quotas = { jobsPerDay: 100_000, maxWaitingJobs: 10_000, maxRunningJobs: 10 };
    expect(answer.json()).toEqual({
      tenantId: 'acme',
      tier: null,
      overrides: {},
      effective: {
        tier: 'standard',
        requestsPerMinute: 3000,
        keyRequestsPerMinute: 3000,
        kinds: Object.fromEntries(QUEUE_NAMES.map((kind) => [kind, quotas])),
      },
    });
  });

  it('refuses other tenants, keys without admin, no key and a bad id; fleet:admin reads any tenant', async () => {
    expect((await api.get('/v1/admin/tenants/acme/limits', globexAdmin)).statusCode).toBe(403);
    expect((await api.get('/v1/admin/tenants/acme/limits', api.keys.writer)).statusCode).toBe(403);
    expect((await api.app.inject({ method: 'GET', url: '/v1/admin/tenants/acme/limits' })).statusCode).toBe(401);
    const badId = await api.get('/v1/admin/tenants/ac%01me/limits', api.keys.operator);
    expect(badId.statusCode).toBe(400);
    expect(badId.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect((await api.get('/v1/admin/tenants/globex/limits', api.keys.operator)).json()).toMatchObject({ tenantId: 'globex' });
    expect((await api.get('/v1/admin/tenants/nobody/limits', api.keys.operator)).statusCode).toBe(404);
  });

  it("refuses a tenant's own admin raising its limits (403), and changes nothing", async () => {
    const answer = await put('acme', { tier: 'enterprise' }, api.keys.admin);
    expect(answer.statusCode).toBe(403);
    expect(answer.json()).toMatchObject({ detail: expect.stringContaining('fleet:admin') });
    expect(await tenantLimitsRepository.read(api.testDb.database.db, 'acme')).toEqual({ tier: null, overrides: {} });
  });

  it('sets a tier and replaces the overrides for fleet:admin, answering the new effective limits', async () => {
    const overrides = { requestsPerMinute: 500, kinds: { 'afip-sync': { jobsPerDay: 20 } } };
    const answer = await put('globex', { tier: 'free', overrides });
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toMatchObject({
      tenantId: 'globex',
      tier: 'free',
      overrides,
      effective: {
        tier: 'free',
        requestsPerMinute: 500,
        keyRequestsPerMinute: 120,
        kinds: { 'afip-sync': { jobsPerDay: 20, maxWaitingJobs: 100, maxRunningJobs: 2 }, 'calendar-sync': { jobsPerDay: 1000 } },
      },
    });
    // The tier alone leaves the overrides; null goes back to the default tier.
    expect((await put('globex', { tier: null })).json()).toMatchObject({ tier: null, overrides, effective: { tier: 'standard', requestsPerMinute: 500 } });
    expect((await put('globex', { overrides: {} })).json()).toMatchObject({ overrides: {}, effective: { requestsPerMinute: 3000 } });
  });

  it('refuses an unknown tier, invalid overrides and an unknown job kind with 422 naming each field', async () => {
    const tier = await put('globex', { tier: 'gold' });
    expect(tier.statusCode).toBe(422);
    expect(tier.json()).toMatchObject({
      type: '/problems/validation',
      errors: [{ path: 'tier', message: 'not a configured tier (known: free, standard, enterprise)' }],
    });
    const overrides = await put('globex', { overrides: { requestsPerMinute: 0, burst: 5, kinds: { 'no-such-kind': { jobsPerDay: 1 } } } });
    expect(overrides.statusCode).toBe(422);
    expect(overrides.json<{ errors: { path: string }[] }>().errors.map((e) => e.path).sort()).toEqual([
      'overrides.burst',
      'overrides.kinds.no-such-kind',
      'overrides.requestsPerMinute',
    ]);
    for (const body of [{}, [], 'free', { tier: 'free', extra: true }]) {
      const answer = await put('globex', body);
      expect([body, answer.statusCode]).toEqual([body, 422]);
    }
    expect(await tenantLimitsRepository.read(api.testDb.database.db, 'globex')).toEqual({ tier: null, overrides: {} });
  });

  it('answers 404 for an unknown tenant', async () => {
    const answer = await put('nobody', { tier: 'free' });
    expect(answer.statusCode).toBe(404);
    expect(answer.json()).toMatchObject({ detail: 'No tenant "nobody"' });
  });

  it('documents both routes in the OpenAPI document', async () => {
    const document = (await api.app.inject('/docs/json')).json<{ paths: Record<string, Record<string, unknown>> }>();
    expect(Object.keys(document.paths['/v1/admin/tenants/{id}/limits'] ?? {}).sort()).toEqual(['get', 'put']);
  });
});
