import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '@jobfleet/db';
import { createMetrics, registerQueueGauges } from '@jobfleet/observability';
import { metricValue } from '@jobfleet/observability/testing';
import { Queue } from 'bullmq';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../support/redis';

// The gauges read at scrape time, against the machine's real Redis and Postgres.
describe('scrape-time gauges', () => {
  let redis: Redis;
  let prefix: string;
  let testDb: TestDatabase;

  beforeAll(async () => {
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    prefix = uniquePrefix('scrape-gauges');
    testDb = await createTestDatabase();
  });
  afterAll(async () => {
    await deletePrefix(prefix);
    redis.disconnect();
    await testDb.drop();
  });

  it('reports the age of the oldest waiting job of each queue, the next prioritized one included, and 0 when none waits', async () => {
    const busy = new Queue('calendar-sync', { connection: redis, prefix });
    const idle = new Queue('backup', { connection: redis, prefix });
    const metrics = createMetrics();
    registerQueueGauges(metrics, [busy, idle]);
    const now = Date.now();
    await busy.add('job', {}, { timestamp: now - 60_000 });
    await busy.add('job', {}, { timestamp: now - 5_000 });
    await busy.add('job', {}, { timestamp: now - 120_000, priority: 3 });

    await metrics.registry.metrics();
    const age = await metricValue(metrics, 'queue_oldest_waiting_job_age_seconds', { queue: 'calendar-sync' });
    expect(age).toBeGreaterThanOrEqual(120);
    expect(age).toBeLessThan(180);
    expect(await metricValue(metrics, 'queue_oldest_waiting_job_age_seconds', { queue: 'backup' })).toBe(0);

    // Once the prioritized job is gone, the wait list's oldest (60 s) is the oldest.
    await busy.drain();
    await busy.add('job', {}, { timestamp: now - 60_000 });
    await metrics.registry.metrics();
    const afterDrain = await metricValue(metrics, 'queue_oldest_waiting_job_age_seconds', { queue: 'calendar-sync' });
    expect(afterDrain).toBeGreaterThanOrEqual(60);
    expect(afterDrain).toBeLessThan(120);
    await Promise.all([busy.close(), idle.close()]);
  });

  it("reports Redis memory in use and maxmemory as CONFIG GET reads it", async () => {
    const metrics = createMetrics();
    metrics.watchRedisMemory(new Map([['main', redis]]));
    const [, maxmemory] = (await redis.config('GET', 'maxmemory')) as [string, string];

    await metrics.registry.metrics();
    expect(await metricValue(metrics, 'redis_memory_used_bytes', { redis: 'main' })).toBeGreaterThan(0);
    expect(await metricValue(metrics, 'redis_memory_max_bytes', { redis: 'main' })).toBe(Number(maxmemory));
  });

  it('reads a configured maxmemory from INFO memory', async () => {
    // A private Redis on a unix socket, with a limit the shared one does not have.
    const dir = mkdtempSync(join(tmpdir(), 'jf-redis-'));
    const socket = join(dir, 'redis.sock');
    const server = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--maxmemory', '64mb', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    for (let tries = 0; !existsSync(socket) && tries < 100; tries++) await new Promise((resolve) => setTimeout(resolve, 50));
    const limited = new Redis({ path: socket, maxRetriesPerRequest: 1 });
    try {
      await once(limited, 'ready');
      const metrics = createMetrics();
      metrics.watchRedisMemory(new Map([['afip-sync', limited]]));
      await metrics.registry.metrics();
      expect(await metricValue(metrics, 'redis_memory_max_bytes', { redis: 'afip-sync' })).toBe(64 * 1024 * 1024);
      expect(await metricValue(metrics, 'redis_memory_used_bytes', { redis: 'afip-sync' })).toBeGreaterThan(0);
    } finally {
      limited.disconnect();
      server.kill();
      await once(server, 'exit');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves out a Redis that does not answer INFO in time', async () => {
    const metrics = createMetrics();
    const silent = { info: () => new Promise<string>(() => undefined) };
    metrics.watchRedisMemory(new Map([['main', redis], ['afip-sync', silent]]), { timeoutMs: 50 });

    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^redis_memory_used_bytes\{redis="main"\} [1-9]/m);
    expect(text).not.toContain('redis="afip-sync"');
  });

  it('reports the Postgres pool: connections in use while queries hold them, and queries waiting for one', async () => {
    const database = openDatabase({ url: testDb.url, dataDir: '.data', poolMax: 1 });
    const metrics = createMetrics();
    metrics.watchPostgresPool(() => database.poolStats());
    try {
      const sleeping = [database.rows(sql`select pg_sleep(1)`), database.rows(sql`select pg_sleep(0.1)`)];
      await new Promise((resolve) => setTimeout(resolve, 300));
      await metrics.registry.metrics();
      expect(await metricValue(metrics, 'postgres_pool_connections', { state: 'in-use' })).toBe(1);
      expect(await metricValue(metrics, 'postgres_pool_waiting_requests')).toBe(1);
      expect(await metricValue(metrics, 'postgres_pool_max_connections')).toBe(1);

      await Promise.all(sleeping);
      await metrics.registry.metrics();
      expect(await metricValue(metrics, 'postgres_pool_connections', { state: 'in-use' })).toBe(0);
      expect(await metricValue(metrics, 'postgres_pool_connections', { state: 'idle' })).toBe(1);
      expect(await metricValue(metrics, 'postgres_pool_waiting_requests')).toBe(0);
    } finally {
      await database.close();
    }
  });

  it('reports no pool for the embedded database', async () => {
    const metrics = createMetrics();
    metrics.watchPostgresPool(() => undefined);
    await metrics.registry.metrics();
    expect(await metricValue(metrics, 'postgres_pool_connections', { state: 'in-use' })).toBeUndefined();
  });
});
