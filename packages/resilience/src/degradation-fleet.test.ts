import { loadConfig } from '@jobfleet/config';
import { createMetrics } from '@jobfleet/observability';
import { captureLogs } from '@jobfleet/observability/testing';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../../../tests/support/redis';
import { startDegradation } from './degradation-fleet';

describe('degradation signals', () => {
  const prefix = uniquePrefix('degradation-fleet');
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    await deletePrefix(prefix);
    redis.disconnect();
  });

  it('counts a waiting job from when it is due: one promoted before its delay is up has not waited yet', async () => {
    const early = new Queue('calendar-sync', { connection: redis, prefix });
    const due = new Queue('afip-sync', { connection: redis, prefix });
    const now = Date.now();
    // Enqueued an hour ago with a delay that ends in a minute, and promoted (to the wait list) now.
    await early.add('job', {}, { timestamp: now - 3_600_000, delay: 3_660_000 });
    await early.promoteJobs();
    expect(await early.getJobCounts('wait')).toEqual({ wait: 1 });
    await due.add('job', {}, { timestamp: now - 600_000 });

    const degradation = startDegradation({
      config: loadConfig({}).degradation,
      prefix,
      id: 'test',
      sources: { main: redis, instances: new Map([['main', redis]]), queues: [early, due], pingPostgres: async () => undefined },
      audit: async () => undefined,
      logger: captureLogs().logger,
      metrics: createMetrics(),
      timeoutMs: 2000,
      countsAsWorker: false,
    });
    try {
      while (degradation.current().signals === null) await new Promise((resolve) => setTimeout(resolve, 20));
      const age = degradation.current().signals?.oldestJobAgeMs;
      expect(age).toBeGreaterThanOrEqual(600_000);
      expect(age).toBeLessThan(660_000);
    } finally {
      await degradation.stop();
      await Promise.all([early.close(), due.close()]);
    }
  });
});
