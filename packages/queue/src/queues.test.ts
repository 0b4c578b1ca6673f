import { loadConfig } from '@jobfleet/config';
import { createMetrics, registerQueueGauges } from '@jobfleet/observability';
import { metricValue } from '@jobfleet/observability/testing';
import type { Queue } from 'bullmq';
import { deletePrefix, uniquePrefix } from '../../../tests/support/redis';
import { createRedisConnection, type RedisClient } from './connection';
import { closeQueues, createQueues, enqueueMany, jobIdFor, jobOptionsFor, type EnqueueJob } from './queues';
import { disconnectUnreachable, readyConnection, TEST_QUEUES, type TestQueueName } from './test-support';

const config = loadConfig({
  CALENDAR_SYNC_ATTEMPTS: '4',
  JOBS_BACKOFF_DELAY_MS: '250',
  JOBS_REMOVE_ON_COMPLETE_AGE_SECONDS: '60',
  JOBS_REMOVE_ON_COMPLETE_COUNT: '100',
  JOBS_REMOVE_ON_FAIL_AGE_SECONDS: '600',
  JOBS_REMOVE_ON_FAIL_COUNT: '1000',
});

/** enqueueMany of one job: its one result. */
async function enqueueOne(queue: Queue, job: EnqueueJob): Promise<{ jobId: string; created: boolean }> {
  const [result] = await enqueueMany(queue, [job]);
  if (result === undefined) throw new Error(`no result for ${job.jobId}`);
  return result;
}

describe('jobOptionsFor', () => {
  it('takes attempts per queue, and backoff and retention by age and count from config', () => {
    expect(jobOptionsFor('calendar-sync', config)).toEqual({
      attempts: 4,
      backoff: { type: 'exponential', delay: 250, jitter: 0.5 },
      removeOnComplete: { age: 60, count: 100 },
      removeOnFail: { age: 600, count: 1000 },
    });
  });
});

describe('jobIdFor', () => {
  it('is stable, keeps the tenant readable and tells tenants and keys apart', () => {
    const id = jobIdFor('acme', 'key-1');
    expect(id).toBe(jobIdFor('acme', 'key-1'));
    expect(id).toMatch(/^acme-[0-9a-f]{64}$/);
    expect(jobIdFor('acme', 'key-2')).not.toBe(id);
    expect(jobIdFor('acme-key', '1')).not.toBe(jobIdFor('acme', 'key-1'));
    expect(jobIdFor('a:b', 'k')).toMatch(/^a_b-[0-9a-f]{64}$/);
    expect(jobIdFor('a:b', 'k')).not.toBe(jobIdFor('a_b', 'k'));
  });
});

describe('queues on Redis', () => {
  const prefix = uniquePrefix('queue-queues');
  let producer: RedisClient;
  let queues: Record<TestQueueName, Queue>;
  let queue: Queue;

  beforeAll(async () => {
    producer = await readyConnection('producer');
    queues = createQueues({ names: TEST_QUEUES, connection: producer, prefix, config });
    queue = queues['calendar-sync'];
  });
  afterEach(async () => {
    await queue.resume();
    await queue.obliterate({ force: true });
  });
  afterAll(async () => {
    await closeQueues(queues);
    producer.disconnect();
    await deletePrefix(prefix);
  });

  it('BullMQ accepts the ids of jobIdFor, even for tenants with colons or made of digits', async () => {
    for (const tenant of ['acme', 'a:b:c', '12345', 'ünï cødé']) {
      const jobId = jobIdFor(tenant, 'k');
      await expect(enqueueOne(queue, { jobId, name: 'calendar-sync', data: { tenant } })).resolves.toEqual({ jobId, created: true });
      expect((await queue.getJob(jobId))?.data).toEqual({ tenant });
    }
  });

  it('enqueueMany twice with one id keeps one job, the first, and answers created: false the second time', async () => {
    const jobId = jobIdFor('acme', 'same-key');
    await expect(enqueueOne(queue, { jobId, name: 'calendar-sync', data: { n: 1 } })).resolves.toEqual({ jobId, created: true });
    await expect(enqueueOne(queue, { jobId, name: 'calendar-sync', data: { n: 2 } })).resolves.toEqual({ jobId, created: false });
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 1 });
    expect((await queue.getJob(jobId))?.data).toEqual({ n: 1 });
  });

  it('enqueueMany adds every job with its priority and tells which ids held a job already', async () => {
    const existing = jobIdFor('acme', 'bulk-existing');
    const sameData = jobIdFor('acme', 'bulk-same-data');
    await enqueueOne(queue, { jobId: existing, name: 'calendar-sync', data: { n: 'first' } });
    await enqueueOne(queue, { jobId: sameData, name: 'calendar-sync', data: { n: 'same' } });
    // A later millisecond, so only the stored timestamp tells the kept job with identical data from ours.
    await new Promise((done) => setTimeout(done, 2));
    const jobs = [
      { jobId: jobIdFor('acme', 'bulk-1'), name: 'calendar-sync', data: { n: 1 }, priority: 3 },
      { jobId: existing, name: 'calendar-sync', data: { n: 'second' }, priority: 1 },
      { jobId: jobIdFor('acme', 'bulk-2'), name: 'calendar-sync', data: { n: 2 } },
      { jobId: sameData, name: 'calendar-sync', data: { n: 'same' } },
    ];
    await expect(enqueueMany(queue, jobs)).resolves.toEqual([
      { jobId: jobs[0]!.jobId, created: true },
      { jobId: existing, created: false },
      { jobId: jobs[2]!.jobId, created: true },
      { jobId: sameData, created: false },
    ]);
    expect((await queue.getJob(existing))?.data).toEqual({ n: 'first' });
    expect((await queue.getJob(jobs[0]!.jobId))?.opts).toMatchObject({ ...jobOptionsFor('calendar-sync', config), priority: 3 });
    expect(await queue.getJobCounts('waiting', 'prioritized')).toEqual({ waiting: 3, prioritized: 1 });
    await expect(enqueueMany(queue, [])).resolves.toEqual([]);
  });

  it('gives every job the default options of its queue', async () => {
    const { jobId } = await enqueueOne(queue, { jobId: jobIdFor('acme', 'defaults'), name: 'calendar-sync', data: {} });
    expect((await queue.getJob(jobId))?.opts).toMatchObject(jobOptionsFor('calendar-sync', config));
  });

  it('enqueue through a producer connection to a dead port fails in under a second', async () => {
    const dead = createRedisConnection('redis://127.0.0.1:1', 'producer');
    const deadQueues = createQueues({ names: TEST_QUEUES, connection: dead, prefix, config });
    try {
      const started = performance.now();
      await expect(enqueueOne(deadQueues['calendar-sync'], { jobId: jobIdFor('acme', 'k'), name: 'calendar-sync', data: {} })).rejects.toThrow();
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      await closeQueues(deadQueues);
      await disconnectUnreachable(dead);
    }
  });

  it('queue_jobs shows waiting and delayed counts read at scrape time, and paused ones while paused', async () => {
    const metrics = createMetrics();
    registerQueueGauges(metrics, Object.values(queues));
    await queue.add('calendar-sync', {}, { jobId: jobIdFor('acme', 'w1') });
    await queue.add('calendar-sync', {}, { jobId: jobIdFor('acme', 'w2') });
    await queue.add('calendar-sync', {}, { jobId: jobIdFor('acme', 'd1'), delay: 60_000 });

    const state = (s: string) => metricValue(metrics, 'queue_jobs', { queue: 'calendar-sync', state: s });
    await metrics.registry.metrics();
    expect([await state('waiting'), await state('delayed'), await state('paused'), await state('active')]).toEqual([2, 1, 0, 0]);

    await queue.pause();
    await metrics.registry.metrics();
    expect([await state('waiting'), await state('paused')]).toEqual([0, 2]);
    expect(await metricValue(metrics, 'queue_metrics_collect_errors_total', { queue: 'calendar-sync' })).toBeUndefined();
  });
});
