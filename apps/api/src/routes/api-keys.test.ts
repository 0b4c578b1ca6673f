import { createApiKey, findApiKey, listApiKeys, schema } from '@jobfleet/db';
import { eq } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { startTestApi, type TestApi } from '../testing/harness';

const BASE = '/v1/admin/tenants/acme/api-keys';
const DAY_MS = 24 * 3_600_000;

describe('API key admin routes', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-keys' });
  });
  afterAll(async () => {
    await api.close();
  });

  const call = (method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown, key = api.keys.admin) =>
    api.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
  const expectProblem = (answer: LightMyRequestResponse, status: number, type?: string) => {
    expect(answer.statusCode).toBe(status);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    if (type !== undefined) expect(answer.json()).toMatchObject({ type, status });
  };
  /** 404 from the sync route means the key authenticated (it has jobs:read and nothing is synced). */
  const authenticates = async (key: string) => {
    const status = (await api.get('/v1/sync/reservation/nothing', key)).statusCode;
    if (status !== 404 && status !== 401) throw new Error(`unexpected ${status}`);
    return status === 404;
  };
  const create = async (body: Record<string, unknown>, key = api.keys.admin) => {
    const answer = await call('POST', BASE, body, key);
    expect(answer.statusCode).toBe(201);
    return answer.json<{ id: string; key: string; expiresAt: string | null }>();
  };

  it("creates a key (201, the key shown once) that authenticates, and lists the tenant's keys without it", async () => {
    const expiresAt = new Date(Date.now() + 90 * DAY_MS).toISOString();
    const answer = await call('POST', BASE, { name: 'deploy bot', scopes: ['jobs:read', 'jobs:write', 'jobs:read'], expiresAt });
    expect(answer.statusCode).toBe(201);
    const created = answer.json<{ id: string; key: string }>();
    expect(created).toEqual({
      id: expect.any(String),
      tenantId: 'acme',
      name: 'deploy bot',
      prefix: created.key.slice(0, 8),
      scopes: ['jobs:read', 'jobs:write'],
      createdAt: expect.any(String),
      lastUsedAt: null,
      expiresAt,
      revokedAt: null,
      replacedBy: null,
      key: expect.stringMatching(/^jf_/),
    });
    expect(await authenticates(created.key)).toBe(true);

    const listed = await call('GET', BASE);
    expect(listed.statusCode).toBe(200);
    const { key: _shownOnce, ...withoutKey } = created;
    const { tenantId, items } = listed.json<{ tenantId: string; items: { id: string; tenantId: string; lastUsedAt: unknown }[] }>();
    expect(tenantId).toBe('acme');
    const item = items.find((k) => k.id === created.id);
    // lastUsedAt is written in the background: the next test checks it.
    expect(item).toEqual({ ...withoutKey, lastUsedAt: item?.lastUsedAt });
    expect(items.every((k) => k.tenantId === 'acme')).toBe(true);
    expect(listed.body).not.toContain(created.key);
    expect(listed.body).not.toMatch(/hash/i);
  });

  it("records a key's last use once, however many requests it makes within the minute", async () => {
    const { id, key } = await create({ name: 'busy', scopes: ['jobs:read'] });
    await authenticates(key);
    const lastUsed = async () => (await findApiKey(api.testDb.database.db, id))?.lastUsedAt ?? null;
    // The write is not awaited by the request: wait for it.
    const deadline = Date.now() + 5000;
    while ((await lastUsed()) === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const first = await lastUsed();
    expect(first).toEqual(expect.any(Date));

    await Promise.all(Array.from({ length: 50 }, () => authenticates(key)));
    await new Promise((r) => setTimeout(r, 300));
    expect(await lastUsed()).toEqual(first);
    const listed = (await call('GET', BASE)).json<{ items: { id: string; lastUsedAt: string }[] }>();
    expect(listed.items.find((k) => k.id === id)?.lastUsedAt).toBe(first?.toISOString());

    // The process itself holds back: with the row made older than a minute, which the database's own
    // condition would let through, these requests still write nothing.
    const older = new Date(Date.now() - 120_000);
    await api.testDb.database.db.update(schema.apiKeys).set({ lastUsedAt: older }).where(eq(schema.apiKeys.id, id));
    await Promise.all(Array.from({ length: 10 }, () => authenticates(key)));
    await new Promise((r) => setTimeout(r, 300));
    expect(await lastUsed()).toEqual(older);
  });

  it('a cached key stops authenticating at its expiry, before the cache would look again', async () => {
    const { key } = await createApiKey(api.testDb.database.db, { tenantId: 'acme', name: 'brief', scopes: ['jobs:read'], expiresAt: new Date(Date.now() + 1500) });
    expect(await authenticates(key)).toBe(true);
    await new Promise((r) => setTimeout(r, 1600));
    // Well within the 5 s cache TTL of the first lookup.
    expect(await authenticates(key)).toBe(false);
  });

  it('rotates a key: the new one is shown once, the old one keeps working through the grace and points at its successor', async () => {
    const old = await create({ name: 'rotating', scopes: ['jobs:read'], expiresAt: new Date(Date.now() + 30 * DAY_MS).toISOString() });
    const answer = await call('POST', `${BASE}/${old.id}/rotate`, { graceSeconds: 600 });
    expect(answer.statusCode).toBe(201);
    const rotated = answer.json<{ id: string; key: string; name: string; expiresAt: string; previous: { id: string; replacedBy: string; expiresAt: string } }>();
    expect(rotated).toMatchObject({ tenantId: 'acme', name: 'rotating', scopes: ['jobs:read'], key: expect.stringMatching(/^jf_/) });
    expect(Date.parse(rotated.expiresAt)).toBeGreaterThan(Date.now() + 29 * DAY_MS);
    expect(rotated.previous).toMatchObject({ id: old.id, replacedBy: rotated.id, revokedAt: null });
    expect(Math.abs(Date.parse(rotated.previous.expiresAt) - (Date.now() + 600_000))).toBeLessThan(60_000);
    expect(await authenticates(rotated.key)).toBe(true);
    expect(await authenticates(old.key)).toBe(true);

    expectProblem(await call('POST', `${BASE}/${old.id}/rotate`), 409, '/problems/api-key');
    // An empty POST takes the default grace: a day.
    const next = (await call('POST', `${BASE}/${rotated.id}/rotate`)).json<{ previous: { expiresAt: string } }>();
    expect(Math.abs(Date.parse(next.previous.expiresAt) - (Date.now() + DAY_MS))).toBeLessThan(60_000);
  });

  it('a grace of 0 revokes the old key at once', async () => {
    const old = await create({ name: 'leaked', scopes: ['jobs:read'] });
    const answer = await call('POST', `${BASE}/${old.id}/rotate`, { graceSeconds: 0 });
    expect(answer.json()).toMatchObject({ previous: { id: old.id, revokedAt: expect.any(String) } });
    // Never looked up before, so no cache can keep it alive.
    expect(await authenticates(old.key)).toBe(false);
  });

  it("revokes a key (204, again 204), and answers 404 for an unknown key or another tenant's", async () => {
    const doomed = await create({ name: 'doomed', scopes: ['jobs:read'] });
    expect((await call('DELETE', `${BASE}/${doomed.id}`)).statusCode).toBe(204);
    expect((await call('DELETE', `${BASE}/${doomed.id}`)).statusCode).toBe(204);
    expect(await authenticates(doomed.key)).toBe(false);
    expect((await findApiKey(api.testDb.database.db, doomed.id))?.revokedAt).toEqual(expect.any(Date));

    expectProblem(await call('DELETE', `${BASE}/no-such-key`), 404);
    const theirs = (await call('POST', '/v1/admin/tenants/globex/api-keys', { name: 'theirs', scopes: ['jobs:read'] }, api.keys.otherAdmin)).json<{ id: string; key: string }>();
    // acme's admin can neither see nor touch globex's key through acme's path.
    expectProblem(await call('DELETE', `${BASE}/${theirs.id}`), 404);
    expectProblem(await call('POST', `${BASE}/${theirs.id}/rotate`), 404);
    expect(await authenticates(theirs.key)).toBe(true);
  });

  it("refuses a tenant admin another tenant's keys (403); fleet:admin reaches every tenant", async () => {
    expectProblem(await call('GET', '/v1/admin/tenants/globex/api-keys'), 403);
    expectProblem(await call('POST', '/v1/admin/tenants/globex/api-keys', { name: 'x', scopes: ['jobs:read'] }), 403);
    expectProblem(await call('GET', BASE, undefined, api.keys.writer), 403);
    expect((await call('GET', '/v1/admin/tenants/globex/api-keys', undefined, api.keys.otherOperator)).statusCode).toBe(200);
    expectProblem(await call('GET', '/v1/admin/tenants/nobody/api-keys', undefined, api.keys.otherOperator), 404);
    expectProblem(await call('GET', BASE, undefined, 'jf_not_a_key'), 401);
  });

  it('a tenant admin cannot make, rotate or revoke a fleet:admin key (403); a fleet:admin caller can', async () => {
    const before = (await listApiKeys(api.testDb.database.db, 'acme')).length;
    expectProblem(await call('POST', BASE, { name: 'escalate', scopes: ['admin', 'fleet:admin'] }), 403, '/problems/scope-escalation');
    expect(await listApiKeys(api.testDb.database.db, 'acme')).toHaveLength(before);

    // The harness's operator key is a fleet:admin key of acme: rotating it would hand acme's admin a copy.
    const operator = (await listApiKeys(api.testDb.database.db, 'acme')).find((k) => k.scopes.includes('fleet:admin'));
    if (operator === undefined) throw new Error('the harness has no fleet:admin key in acme');
    expectProblem(await call('POST', `${BASE}/${operator.id}/rotate`), 403, '/problems/scope-escalation');
    expectProblem(await call('DELETE', `${BASE}/${operator.id}`), 403, '/problems/scope-escalation');
    expect(await listApiKeys(api.testDb.database.db, 'acme')).toHaveLength(before);

    expect((await call('POST', BASE, { name: 'operator 2', scopes: ['fleet:admin'] }, api.keys.otherOperator)).statusCode).toBe(201);
  });

  it.each([
    ['no name', { scopes: ['jobs:read'] }, 'name'],
    ['an empty name', { name: '', scopes: ['jobs:read'] }, 'name'],
    ['a name with a control character', { name: 'bell\u0007', scopes: ['jobs:read'] }, 'name'],
    ['a name of 101 characters', { name: 'n'.repeat(101), scopes: ['jobs:read'] }, 'name'],
    ['no scopes', { name: 'x', scopes: [] }, 'scopes'],
    ['an unknown scope', { name: 'x', scopes: ['root'] }, 'scopes.0'],
    ['scopes as a string', { name: 'x', scopes: 'jobs:read' }, 'scopes'],
    ['an expiry in the past', { name: 'x', scopes: ['jobs:read'], expiresAt: '2020-01-01T00:00:00Z' }, 'expiresAt'],
    ['an expiry ten years ahead', { name: 'x', scopes: ['jobs:read'], expiresAt: new Date(Date.now() + 3653 * DAY_MS).toISOString() }, 'expiresAt'],
    ['an expiry without offset', { name: 'x', scopes: ['jobs:read'], expiresAt: '2030-01-01T00:00:00' }, 'expiresAt'],
    ['an expiry in year 0', { name: 'x', scopes: ['jobs:read'], expiresAt: '0000-01-01T00:00:00Z' }, 'expiresAt'],
    ['an expiry as a number', { name: 'x', scopes: ['jobs:read'], expiresAt: 1_900_000_000 }, 'expiresAt'],
    ['an unknown field', { name: 'x', scopes: ['jobs:read'], tenantId: 'globex' }, 'tenantId'],
  ])('refuses a key with %s: 422 naming the field', async (_what, body, path) => {
    const answer = await call('POST', BASE, body);
    expectProblem(answer, 422, '/problems/validation');
    expect(answer.json<{ errors: { path: string }[] }>().errors.map((e) => e.path)).toContain(path);
  });

  it.each([
    ['negative', { graceSeconds: -1 }],
    ['fractional', { graceSeconds: 1.5 }],
    ['a string', { graceSeconds: '60' }],
    ['over 30 days', { graceSeconds: 31 * 24 * 3600 }],
    ['an unknown field', { grace: 60 }],
  ])('refuses a rotation grace that is %s (422), and rotates nothing', async (_what, body) => {
    const key = await create({ name: 'kept', scopes: ['jobs:read'] });
    expectProblem(await call('POST', `${BASE}/${key.id}/rotate`, body), 422, '/problems/validation');
    expect((await findApiKey(api.testDb.database.db, key.id))?.replacedBy).toBeNull();
  });

  it('answers bad bodies and ids with 4xx problems, never 5xx', async () => {
    expectProblem(await call('POST', BASE, '{"name":'), 400);
    expectProblem(await call('POST', BASE, '[]'), 422);
    expectProblem(await call('DELETE', `${BASE}/bad%00id`), 400);
    expectProblem(await call('POST', `${BASE}/${'k'.repeat(101)}/rotate`), 400);
    expectProblem(await call('DELETE', `${BASE}/%ED%A0%80`), 400);
    expectProblem(await call('GET', '/v1/admin/tenants/bad%20tenant/api-keys', undefined, api.keys.otherOperator), 400);
  });
});
