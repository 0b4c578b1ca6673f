import { DependencyUnavailableError } from '@jobfleet/contracts';
import { createMetrics } from '@jobfleet/observability';
import { captureLogs } from '@jobfleet/observability/testing';
import { createDependencyGuard } from '@jobfleet/resilience';
import { createRedisConnection, MAIN_REDIS, waitUntilReady } from '@jobfleet/queue';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { TEST_REDIS_URL } from '../../../tests/support/redis';
import { startWorkerHttp } from './http';

describe('worker metrics and health endpoint', () => {
  let testDb: TestDatabase;
  const redis = createRedisConnection(TEST_REDIS_URL, 'producer', { name: 'test-worker-http' });
  beforeAll(async () => {
    testDb = await createTestDatabase();
    await waitUntilReady(redis, 5000);
  });
  afterAll(async () => {
    redis.disconnect();
    await testDb.drop();
  });

  it('serves metrics, and readiness that names a failed store and lists open breakers without failing', async () => {
    const metrics = createMetrics();
    const calendar = createDependencyGuard(
      'calendar',
      { timeoutMs: 1000, retries: 0, retryBaseMs: 10, maxFailures: 1, halfOpenAfterMs: 60_000, maxConcurrent: 0 },
      { metrics, logger: captureLogs().logger },
    );
    const guards = { calendar };
    // The level as the process's degradation runner last read it.
    const degradation = { current: () => ({ level: 'LIMITED' as const, since: new Date().toISOString(), raised: ['oldestJobAge' as const], signals: null }) };
    const { server, port } = await startWorkerHttp({ metrics, database: testDb.database, redis: new Map([[MAIN_REDIS, redis]]), readyTimeoutMs: 1000, guards, degradation }, 0, '127.0.0.1');
    try {
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/metrics`)).status).toBe(200);
      const ready = await fetch(`${base}/health/ready`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ok', checks: { redis: 'ok', postgres: 'ok' }, degraded: {}, level: 'LIMITED' });

      // A Google outage opens the calendar breaker: reported, still ready.
      // (The failure that opens it comes back as a wait: CircuitOpenError.)
      await expect(calendar.call('insertEvent', async () => Promise.reject(new DependencyUnavailableError('calendar', '503')))).rejects.toMatchObject({
        code: 'CIRCUIT_OPEN',
      });
      const degraded = await fetch(`${base}/health/ready`);
      expect(degraded.status).toBe(200);
      expect(await degraded.json()).toEqual({ status: 'degraded', checks: { redis: 'ok', postgres: 'ok' }, degraded: { calendar: 'open' }, level: 'LIMITED' });

      await testDb.database.close();
      const down = await fetch(`${base}/health/ready`);
      expect(down.status).toBe(503);
      const body = (await down.json()) as { checks: { redis: string; postgres: string } };
      expect(body.checks.redis).toBe('ok');
      expect(body.checks.postgres).not.toBe('ok');
    } finally {
      server.close();
    }
  });

  it('with a metrics token, answers /metrics only to its bearer: 401 problem with a Bearer challenge otherwise', async () => {
    const { server, port } = await startWorkerHttp({ metrics: createMetrics(), database: testDb.database, redis: new Map([[MAIN_REDIS, redis]]), readyTimeoutMs: 1000, metricsToken: 'scrape-token' }, 0, '127.0.0.1');
    try {
      const url = `http://127.0.0.1:${port}/metrics`;
      for (const headers of [{}, { authorization: 'Bearer wrong-token' }, { authorization: 'Basic c2NyYXBlLXRva2Vu' }]) {
        const refused = await fetch(url, { headers });
        expect(refused.status).toBe(401);
        expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
        expect(refused.headers.get('content-type')).toBe('application/problem+json');
        expect(await refused.json()).toMatchObject({ title: 'Unauthorized', status: 401 });
      }
      const scraped = await fetch(url, { headers: { authorization: 'Bearer scrape-token' } });
      expect(scraped.status).toBe(200);
      expect(await scraped.text()).toContain('process_cpu');
    } finally {
      server.close();
    }
  });
});
