import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { adminAuditRepository, tenantLimitsRepository } from '@jobfleet/db';
import { createRedisConnection, type RedisClient } from '@jobfleet/queue';
import { publishBreakerState } from '@jobfleet/resilience';
import { addMemoryBallast, setMemoryRatio, startRedisServer, type RedisServer } from '../../../tests/support/chaos-redis';
import { reservation, startTestApi, type TestApi } from './testing/harness';

// Short settings, so each level is reached and left within seconds; the defaults' 2-minute bound is
// checked in degradation-level.test.ts.
const HOLD_SECONDS = 2;
const ENV = {
  DEGRADATION_INTERVAL_SECONDS: '1',
  DEGRADATION_HOLD_SECONDS: String(HOLD_SECONDS),
  DEGRADATION_OLDEST_JOB_AGE_SECONDS: '60',
  DEGRADATION_RETRY_AFTER_SECONDS: '7',
};
// Of this helper's range: a Redis of our own, whose maxmemory the test sets.
const REDIS_PORT = 47_101;

let redisServer: RedisServer;
let api: TestApi;
let redis: RedisClient;

beforeAll(async () => {
  redisServer = await startRedisServer(REDIS_PORT, { appendonly: false });
  api = await startTestApi({ label: 'degradation', redisUrl: redisServer.url, env: ENV });
  redis = createRedisConnection(redisServer.url, 'producer');
  await redis.ping().catch(() => undefined);
  await addMemoryBallast(redis);
  // globex is of the top tier (enterprise: the most requests per minute); acme stays standard.
  await tenantLimitsRepository.update(api.testDb.database.db, 'globex', { tier: 'enterprise' });
}, 30_000);

afterAll(async () => {
  redis.disconnect();
  await api.close();
  await redisServer.close();
});

async function readiness(): Promise<{ level: string; degradation: { raised: string[] } }> {
  return (await api.app.inject({ method: 'GET', url: '/health/ready' })).json();
}

/** Waits until the level this process acts on is `level`; how long it took, in ms. */
async function levelBecomes(level: string, timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    if ((await readiness()).level === level) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`level did not become ${level} within ${timeoutMs} ms (is ${(await readiness()).level})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const single = (id: string, key = api.keys.writer) =>
  api.app.inject({ method: 'POST', url: '/v1/jobs/calendar-sync', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: reservation(id) });
const batch = (ids: string[]) =>
  api.app.inject({
    method: 'POST',
    url: '/v1/jobs/calendar-sync/batch',
    headers: { authorization: `Bearer ${api.keys.writer}`, 'content-type': 'application/json' },
    payload: { jobs: ids.map((id) => ({ idempotencyKey: id, request: reservation(id) })) },
  });
const backupNow = () =>
  api.app.inject({ method: 'POST', url: '/v1/jobs/backup', headers: { authorization: `Bearer ${api.keys.operator}`, 'content-type': 'application/json' }, payload: { definition: 'nightly' } });

function expectShed(response: Awaited<ReturnType<typeof single>>, level: string): void {
  expect(response.statusCode).toBe(503);
  expect(response.headers['retry-after']).toBe('7');
  expect(response.json()).toMatchObject({ type: '/problems/degraded', status: 503, level });
}

describe('degradation levels', () => {
  it('starts NORMAL and shows the level in /health/ready and the metric', async () => {
    await levelBecomes('NORMAL');
    expect((await readiness()).degradation).toMatchObject({ raised: [] });
    const metrics = await api.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/^fleet_degradation_level 0$/m);
  });

  it('DEGRADED while a breaker is open: intake goes on; NORMAL again once it closes', async () => {
    publishBreakerState(redis, api.config.redis.prefix, 'worker-1', 'calendar', 'open');
    await levelBecomes('DEGRADED');
    expect((await readiness()).degradation.raised).toEqual(['breakerOpen']);
    expect((await single('degraded-1')).statusCode).toBe(202);
    expect((await batch(['degraded-b1'])).statusCode).toBe(200);
    publishBreakerState(redis, api.config.redis.prefix, 'worker-1', 'calendar', 'closed');
    await levelBecomes('NORMAL');
  });

  it('LIMITED by an old waiting job: batches and on-demand backups answer 503, rate limits halve, single jobs go on', async () => {
    const old = await api.queues['calendar-sync'].add('old', { old: true }, { timestamp: Date.now() - 3_600_000 });
    await levelBecomes('LIMITED');
    expectShed(await batch(['limited-b1', 'limited-b2']), 'LIMITED');
    expectShed(await backupNow(), 'LIMITED');
    const accepted = await single('limited-1');
    expect(accepted.statusCode).toBe(202);
    // standard's 3000 requests per minute, halved.
    expect(accepted.headers['ratelimit-policy']).toContain('"tenant";q=1500');
    await old.remove();
    const recovery = await levelBecomes('NORMAL');
    // Back on its own: the hold plus an interval or two.
    expect(recovery).toBeLessThan(120_000);
    // The refused batch left no key claimed: sent again, it is judged afresh and accepted.
    const resent = await batch(['limited-b1', 'limited-b2']);
    expect(resent.json()).toMatchObject({ results: [{ status: 202, replayed: false }, { status: 202, replayed: false }] });
    expect((await single('limited-2')).headers['ratelimit-policy']).toContain('"tenant";q=3000');
  });

  it('MINIMAL by Redis memory: only single jobs of the top tier are accepted', async () => {
    await setMemoryRatio(redis, 0.88);
    await levelBecomes('MINIMAL');
    expectShed(await single('minimal-acme'), 'MINIMAL');
    expect((await single('minimal-globex', api.keys.otherTenant)).statusCode).toBe(202);
    expectShed(await batch(['minimal-b1']), 'MINIMAL');
    await redis.config('SET', 'maxmemory', '0');
    await levelBecomes('NORMAL');
    expect((await single('minimal-acme')).statusCode).toBe(202);
  });

  it('does not flap while memory oscillates inside the hysteresis band', async () => {
    await setMemoryRatio(redis, 0.72);
    await levelBecomes('LIMITED');
    // Between LIMITED's clear threshold (0.7 × 0.9) and its threshold, then above it, a few times.
    for (const ratio of [0.66, 0.71, 0.65, 0.72, 0.66]) {
      await setMemoryRatio(redis, ratio);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect((await readiness()).level).toBe('LIMITED');
    }
    await redis.config('SET', 'maxmemory', '0');
    await levelBecomes('NORMAL');
  });

  it('EMERGENCY when Redis memory is critical: every intake answers 503 with Retry-After', async () => {
    await setMemoryRatio(redis, 0.965);
    await levelBecomes('EMERGENCY');
    expectShed(await single('emergency-globex', api.keys.otherTenant), 'EMERGENCY');
    expectShed(await single('emergency-acme'), 'EMERGENCY');
    await redis.config('SET', 'maxmemory', '0');
    await levelBecomes('NORMAL');
  });

  it('audits every transition as system:degradation', async () => {
    const rows = await adminAuditRepository.list(api.testDb.database.db, { action: 'degradation.transition', limit: 100 });
    const transitions = rows.reverse().map((row) => `${String(row.detail.from)}>${String(row.detail.to)}`);
    expect(transitions).toEqual([
      'NORMAL>DEGRADED',
      'DEGRADED>NORMAL',
      'NORMAL>LIMITED',
      'LIMITED>NORMAL',
      'NORMAL>MINIMAL',
      'MINIMAL>NORMAL',
      'NORMAL>LIMITED',
      'LIMITED>NORMAL',
      'NORMAL>EMERGENCY',
      'EMERGENCY>NORMAL',
    ]);
    expect(rows.every((row) => row.actor === 'system:degradation')).toBe(true);
  });
});
