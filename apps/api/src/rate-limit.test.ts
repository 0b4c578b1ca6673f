import { DEFAULT_TENANT_TIERS } from '@jobfleet/config';
import { createApiKey, createTenant, tenantLimitsRepository, type ApiKeyScope, type Db } from '@jobfleet/db';
import { captureLogs } from '@jobfleet/observability/testing';
import type { LightMyRequestResponse } from 'fastify';
import { ADMIN_PASSWORD, closedPort, startTestApi, type TestApi } from './testing/harness';

// A tier small enough to reach in a test; `standard` stays the default, as in production.
const TIERS = {
  standard: DEFAULT_TENANT_TIERS.standard,
  tiny: { requestsPerMinute: 4, keyRequestsPerMinute: 4, jobsPerDay: 10, maxWaitingJobs: 10, maxRunningJobs: 1 },
};
// Limits are read at every request, not once per 10 s, so a change shows at the next one.
const ENV = { TENANT_TIERS: JSON.stringify(TIERS), TENANT_LIMITS_CACHE_SECONDS: '0' };

/** A new tenant with `keys` admin keys (each its own key limit), so every test starts from empty counters. */
async function tenantWithKeys(db: Db, id: string, keys: number, scopes: ApiKeyScope[] = ['admin']): Promise<string[]> {
  await createTenant(db, { id, name: id });
  const created: string[] = [];
  for (let i = 0; i < keys; i++) created.push((await createApiKey(db, { tenantId: id, name: `key-${i}`, scopes })).key);
  return created;
}

const readLimits = (api: TestApi, tenantId: string, key: string): Promise<LightMyRequestResponse> =>
  api.app.inject({ method: 'GET', url: `/v1/admin/tenants/${tenantId}/limits`, headers: { authorization: `Bearer ${key}` } });

/** Sends one request per key in `keys`, in order, and returns the status codes. */
async function statuses(api: TestApi, tenantId: string, keys: readonly string[]): Promise<number[]> {
  const codes: number[] = [];
  for (const key of keys) codes.push((await readLimits(api, tenantId, key)).statusCode);
  return codes;
}

const repeat = <T>(value: T, times: number): T[] => Array.from({ length: times }, () => value);

describe('tenant and key request rate limits', () => {
  let api: TestApi;
  let db: Db;
  beforeAll(async () => {
    api = await startTestApi({ label: 'rate-limit', env: ENV });
    db = api.testDb.database.db;
  });
  afterAll(async () => {
    await api.close();
  });

  it('answers RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers) on a 2xx, counting down both limits', async () => {
    const [key = ''] = await tenantWithKeys(db, 'headers', 1);
    const first = await readLimits(api, 'headers', key);
    expect(first.statusCode).toBe(200);
    expect(first.headers['ratelimit-policy']).toBe('"tenant";q=3000;w=60, "key";q=3000;w=60');
    expect(first.headers['ratelimit']).toMatch(/^"tenant";r=2999;t=(\d+), "key";r=2999;t=(\d+)$/);
    const second = await readLimits(api, 'headers', key);
    const [, tenantReset, keyReset] = /^"tenant";r=2998;t=(\d+), "key";r=2998;t=(\d+)$/.exec(String(second.headers['ratelimit'])) ?? [];
    for (const reset of [tenantReset, keyReset]) {
      expect(Number(reset)).toBeGreaterThanOrEqual(1);
      expect(Number(reset)).toBeLessThanOrEqual(60);
    }
  });

  it('a tenant override beats its tier, counting all its keys together', async () => {
    const [a = '', b = ''] = await tenantWithKeys(db, 'override', 2);
    await tenantLimitsRepository.update(db, 'override', { tier: 'tiny', overrides: { requestsPerMinute: 6, keyRequestsPerMinute: 6 } });
    // Alternating keys, each far from its own limit: the tier alone would have stopped at 4.
    expect(await statuses(api, 'override', [a, b, a, b, a, b])).toEqual(repeat(200, 6));
    const refused = await readLimits(api, 'override', a);
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.json()).toMatchObject({ type: '/problems/rate-limited', status: 429, detail: expect.stringContaining('the tenant limit') });
    expect(refused.json<{ detail: string }>().detail).not.toContain('the key limit');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(refused.headers['ratelimit-policy']).toBe('"tenant";q=6;w=60, "key";q=6;w=60');
    // The key's own count stays at its 3 served requests: the tenant refused this one, not the key.
    expect(refused.headers['ratelimit']).toMatch(/^"tenant";r=0;t=\d+, "key";r=3;t=\d+$/);
  });

  it('the key limit bites before a higher tenant limit, and a refused key does not use up its siblings\' share', async () => {
    const [a = '', b = '', c = ''] = await tenantWithKeys(db, 'per-key', 3);
    await tenantLimitsRepository.update(db, 'per-key', { overrides: { requestsPerMinute: 5, keyRequestsPerMinute: 2 } });
    expect(await statuses(api, 'per-key', repeat(a, 5))).toEqual([200, 200, 429, 429, 429]);
    const refused = await readLimits(api, 'per-key', a);
    expect(refused.json()).toMatchObject({ type: '/problems/rate-limited', detail: expect.stringContaining('the key limit') });
    expect(refused.headers['ratelimit']).toMatch(/^"tenant";r=3;t=\d+, "key";r=0;t=\d+$/);
    // Key a's refusals took nothing from the tenant: b and c still get the 3 requests left.
    expect(await statuses(api, 'per-key', [b, b, c])).toEqual([200, 200, 200]);
    const tenantRefused = await readLimits(api, 'per-key', c);
    expect(tenantRefused.statusCode).toBe(429);
    expect(tenantRefused.json<{ detail: string }>().detail).toMatch(/^Rate limit exceeded: the tenant limit \(tenant "per-key" may send 5 requests per 60 s/);
  });

  it('a tier change applies at the next request, and back to the default tier lifts it', async () => {
    const [key = ''] = await tenantWithKeys(db, 'tier-change', 1);
    expect(await statuses(api, 'tier-change', repeat(key, 3))).toEqual(repeat(200, 3));
    await tenantLimitsRepository.update(db, 'tier-change', { tier: 'tiny' });
    expect(await statuses(api, 'tier-change', repeat(key, 2))).toEqual([200, 429]);
    await tenantLimitsRepository.update(db, 'tier-change', { tier: null });
    const lifted = await readLimits(api, 'tier-change', key);
    expect(lifted.statusCode).toBe(200);
    expect(lifted.headers['ratelimit-policy']).toBe('"tenant";q=3000;w=60, "key";q=3000;w=60');
  });

  it('another tenant is unaffected while one is limited', async () => {
    const [limited = ''] = await tenantWithKeys(db, 'noisy', 1);
    const [other = ''] = await tenantWithKeys(db, 'quiet', 1);
    await tenantLimitsRepository.update(db, 'noisy', { tier: 'tiny' });
    await tenantLimitsRepository.update(db, 'quiet', { tier: 'tiny' });
    expect(await statuses(api, 'noisy', repeat(limited, 6))).toEqual([...repeat(200, 4), 429, 429]);
    expect(await statuses(api, 'quiet', repeat(other, 4))).toEqual(repeat(200, 4));
  });

  it('limits every authenticated tenant route, counting a request once, and leaves health, metrics, docs and Bull Board alone', async () => {
    const [writer = ''] = await tenantWithKeys(db, 'routes', 1, ['jobs:write', 'jobs:read', 'admin']);
    await tenantLimitsRepository.update(db, 'routes', { tier: 'tiny' });
    const auth = { authorization: `Bearer ${writer}` };
    const answers = [
      await api.app.inject({ method: 'GET', url: '/v1/reservations/r-1/sync', headers: auth }),
      await api.app.inject({ method: 'GET', url: '/v1/jobs/routes-nothing', headers: auth }),
      await api.app.inject({ method: 'GET', url: '/v1/admin/tenants/routes/connections', headers: auth }),
    ];
    // 404s are answers to the tenant like any other: counted, with the fields.
    expect(answers.map((a) => a.statusCode)).toEqual([404, 404, 200]);
    expect(answers.map((a) => /"tenant";r=(\d+)/.exec(String(a.headers['ratelimit']))?.[1])).toEqual(['3', '2', '1']);
    expect((await api.app.inject({ method: 'POST', url: '/v1/jobs/calendar-sync', headers: { ...auth, 'content-type': 'application/json' }, payload: '{}' })).statusCode).toBe(422);
    expect((await api.app.inject({ method: 'GET', url: '/v1/sync/reservation/r-1', headers: auth })).statusCode).toBe(429);

    const basic = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` };
    for (const request of [
      { url: '/health/live' },
      { url: '/health/ready' },
      { url: '/metrics' },
      { url: '/docs/json' },
      { url: '/admin/queues/', headers: basic },
      // Not authenticated: refused before anything is counted.
      { url: '/v1/jobs/x', headers: { authorization: 'Bearer jf_not_a_key' } },
    ]) {
      const answer = await api.app.inject({ method: 'GET', ...request });
      expect([request.url, answer.statusCode === 429, answer.headers['ratelimit']]).toEqual([request.url, false, undefined]);
    }
  });
});

describe('the rate limit window', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'rate-limit-window', env: { ...ENV, RATE_LIMIT_WINDOW_SECONDS: '2' } });
  });
  afterAll(async () => {
    await api.close();
  });

  it('resets after the window: Retry-After seconds later the tenant is served again', async () => {
    const db = api.testDb.database.db;
    const [key = ''] = await tenantWithKeys(db, 'reset', 1);
    await tenantLimitsRepository.update(db, 'reset', { overrides: { requestsPerMinute: 2 } });
    expect(await statuses(api, 'reset', repeat(key, 3))).toEqual([200, 200, 429]);
    const refused = await readLimits(api, 'reset', key);
    expect(refused.headers['ratelimit-policy']).toBe('"tenant";q=2;w=2, "key";q=3000;w=2');
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000 + 100));
    const again = await readLimits(api, 'reset', key);
    expect(again.statusCode).toBe(200);
    expect(again.headers['ratelimit']).toMatch(/^"tenant";r=1;t=\d, "key";r=2999;t=\d$/);
  });
});

describe('rate limits with Redis down', () => {
  let api: TestApi;
  const logs = captureLogs('warn');
  beforeAll(async () => {
    api = await startTestApi({ label: 'rate-limit-outage', redisUrl: `redis://127.0.0.1:${await closedPort()}`, env: ENV, logger: logs.logger });
  });
  afterAll(async () => {
    await api.close();
  });

  it('fail open to a count of this replica alone, with one warning, instead of refusing or not limiting at all', async () => {
    const db = api.testDb.database.db;
    const [key = ''] = await tenantWithKeys(db, 'outage', 1);
    await tenantLimitsRepository.update(db, 'outage', { tier: 'tiny' });
    const served = await readLimits(api, 'outage', key);
    // Reads from Postgres still work: not a 503, and not a 429 for an outage.
    expect(served.statusCode).toBe(200);
    expect(served.headers['ratelimit']).toMatch(/^"tenant";r=3;t=\d+, "key";r=3;t=\d+$/);
    expect(await statuses(api, 'outage', repeat(key, 4))).toEqual([200, 200, 200, 429]);
    const warnings = logs.lines().filter((line) => String(line.msg).startsWith('rate limits unavailable in Redis'));
    expect(warnings).toHaveLength(1);
  });
});
