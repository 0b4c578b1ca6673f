import { createApiKey, createTenant, tenantLimitsRepository } from '@jobfleet/db';
import { startWorkers, type WorkerFleet } from '@jobfleet/worker';
import { createLogger, createMetrics } from '@jobfleet/observability';
import type { RedisConnections } from '@jobfleet/queue';
import type { Job } from 'bullmq';
import { reservationRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { connectTestRedis } from '../support/redis';
import { seedTenantConnections, startTestSystem, type TestSystem } from '../support/system';

/**
 * No tenant starves the others: a tenant arriving behind another's backlog of 5,000 jobs is served
 * at once, round-robin with it, and so is a third one arriving later. Everything goes through the
 * API and the real calendar-sync workers against the fake Google Calendar.
 */
const BACKLOG = 5_000;
const ARRIVALS = 50;
const CONCURRENT_REQUESTS = 25;

describe('fair scheduling between tenants', () => {
  let system: TestSystem;
  let fleet: WorkerFleet | undefined;
  let workerConnection: RedisConnections | undefined;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    system = await startTestSystem({ label: 'fairness', workers: false });
    const { db } = system.testDb.database;
    for (const tenantId of ['big', 'small', 'late']) {
      await createTenant(db, { id: tenantId, name: tenantId });
      await seedTenantConnections(db, tenantId, { cuits: [] });
      keys[tenantId] = (await createApiKey(db, { tenantId, name: 'fairness', scopes: ['jobs:write', 'jobs:read'] })).key;
    }
    // 5,000 requests in a few seconds is past the standard tier's request rate.
    await tenantLimitsRepository.update(db, 'big', { tier: 'enterprise' });
  }, 60_000);
  afterAll(async () => {
    await fleet?.close();
    workerConnection?.disconnect();
    await system.close();
  });

  async function enqueue(tenantId: string, count: number): Promise<void> {
    let next = 0;
    const sender = async () => {
      while (next < count) {
        const index = next++;
        const answer = await system.api.inject({
          method: 'POST',
          url: '/v1/jobs/calendar-sync',
          headers: { authorization: `Bearer ${keys[tenantId] ?? ''}`, 'content-type': 'application/json' },
          payload: reservationRequest(`${tenantId}-${index}`),
        });
        if (answer.statusCode !== 202) throw new Error(`${tenantId} #${index}: ${answer.statusCode} ${answer.body}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENT_REQUESTS }, sender));
  }

  const tenantOf = (job: Job) => (job.data as { tenantId: string }).tenantId;
  const completed = async () => (await system.queues['calendar-sync'].getJobs(['completed'], 0, -1)).sort((a, b) => (a.finishedOn ?? 0) - (b.finishedOn ?? 0));
  const completedOf = async (tenantId: string) => (await completed()).filter((job) => tenantOf(job) === tenantId).length;

  /** How many of `big`'s jobs had completed when the last of `tenantId`'s did. */
  async function bigCompletedBeforeLastOf(tenantId: string): Promise<number> {
    const jobs = await completed();
    const last = jobs.filter((job) => tenantOf(job) === tenantId).at(-1)?.finishedOn;
    if (last === undefined) throw new Error(`${tenantId} completed nothing`);
    return jobs.filter((job) => tenantOf(job) === 'big' && (job.finishedOn ?? 0) <= last).length;
  }

  it(`serves a tenant arriving behind a ${BACKLOG}-job backlog before the backlog's first 1,000`, async () => {
    await enqueue('big', BACKLOG);
    workerConnection = connectTestRedis(system.config, 'worker', 'fairness-worker');
    fleet = await startWorkers({
      config: system.config,
      database: system.testDb.database,
      redis: workerConnection,
      logger: createLogger({ level: 'silent', serviceName: 'fairness' }),
      metrics: createMetrics(),
    });
    // The fleet is busy with the backlog when the others arrive.
    await waitFor(async () => (await completedOf('big')) >= 100, { timeoutMs: 60_000, what: 'big under way' });
    await enqueue('small', ARRIVALS);
    await waitFor(async () => (await completedOf('big')) >= 300, { timeoutMs: 60_000, what: 'big further along' });
    await enqueue('late', ARRIVALS);
    await waitFor(async () => (await completedOf('small')) === ARRIVALS && (await completedOf('late')) === ARRIVALS, {
      timeoutMs: 120_000,
      what: 'small and late done',
    });

    const bigBeforeSmall = await bigCompletedBeforeLastOf('small');
    const bigBeforeLate = await bigCompletedBeforeLastOf('late');
    expect(bigBeforeSmall).toBeLessThan(1_000);
    expect(bigBeforeLate).toBeLessThan(1_000);
    // The backlog is not done: the others did not just wait for its end.
    expect(await completedOf('big')).toBeLessThan(BACKLOG);
  }, 240_000);
});
