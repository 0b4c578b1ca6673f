import { loadConfig } from '@jobfleet/config';
import { createMetrics, type Metrics } from '@jobfleet/observability';
import { captureLogs, metricValue } from '@jobfleet/observability/testing';
import type { Job, Queue, Worker } from 'bullmq';
import type { RedisClient } from './connection';
import { deletePrefix, uniquePrefix } from '../../../tests/support/redis';
import { WorkerClosingError } from './errors';
import { closeQueues, createQueues } from './queues';
import { closeWorkersGracefully, onShutdownSignal } from './shutdown';
import { gate, readyConnection, testSettings, waitFor, TEST_QUEUES, type TestQueueName } from './test-support';
import { createWorker, type JobProcessor } from './worker';

const QUEUE: TestQueueName = 'calendar-sync';
const config = loadConfig({ JOBS_BACKOFF_DELAY_MS: '20' });

describe('closeWorkersGracefully', () => {
  const root = uniquePrefix('queue-shutdown');
  let producer: RedisClient;
  let connection: RedisClient;
  let tests = 0;
  let prefix: string;
  let queues: Record<TestQueueName, Queue>;
  const workers: Worker[] = [];

  beforeAll(async () => {
    producer = await readyConnection('producer');
    connection = await readyConnection('worker');
  });
  beforeEach(() => {
    prefix = `${root}:${++tests}`;
    queues = createQueues({ names: TEST_QUEUES, connection: producer, prefix, config });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close(true)));
    await closeQueues(queues);
  });
  afterAll(async () => {
    producer.disconnect();
    connection.disconnect();
    await deletePrefix(root);
  });

  function worker(processor: JobProcessor<unknown, string>, metrics: Metrics = createMetrics()): Worker {
    const created = createWorker({
      queue: QUEUE,
      connection,
      prefix,
      settings: testSettings({ lockDurationMs: 1000, stalledIntervalMs: 500 }),
      attemptTimeoutMs: 60_000,
      processor,
      logger: captureLogs().logger,
      metrics,
    });
    workers.push(created);
    return created;
  }

  const stored = async (job: Job) => queues[QUEUE].getJob(job.id ?? '');

  it('lets a short active job finish and reports forced: false', async () => {
    const running = gate();
    const w = worker(async () => {
      running.open();
      await new Promise((resolve) => setTimeout(resolve, 300));
      return 'finished';
    });
    const job = await queues[QUEUE].add(QUEUE, { tenantId: 'acme' });
    await running.promise;

    const { logger } = captureLogs();
    await expect(closeWorkersGracefully([w], { timeoutMs: 5000, logger })).resolves.toEqual({ forced: false });
    expect(await (await stored(job))?.getState()).toBe('completed');
    expect((await stored(job))?.returnvalue).toBe('finished');
  });

  it('closes hard after the timeout without waiting for the job, which another worker recovers as stalled and completes', async () => {
    const ignored = gate();
    const running = gate();
    const reasons: unknown[] = [];
    const firstMetrics = createMetrics();
    const first = worker(async (_job, { signal }) => {
      signal.addEventListener('abort', () => reasons.push(signal.reason));
      running.open();
      await ignored.promise;
      return 'first';
    }, firstMetrics);
    const job = await queues[QUEUE].add(QUEUE, { tenantId: 'acme' });
    await running.promise;

    try {
      const { logger, lines } = captureLogs();
      const startedClosing = performance.now();
      await expect(closeWorkersGracefully([first], { timeoutMs: 300, logger })).resolves.toEqual({ forced: true });
      expect(performance.now() - startedClosing).toBeLessThan(1500);
      expect(lines()).toEqual([expect.objectContaining({ level: 'warn', timeoutMs: 300 })]);
      expect(reasons).toEqual([expect.any(WorkerClosingError)]);
      expect(await metricValue(firstMetrics, 'jobs_total', { queue: QUEUE, outcome: 'interrupted' })).toBe(1);
      // Left as it was: still active, no attempt spent, until its lock lapses.
      expect(await (await stored(job))?.getState()).toBe('active');

      const secondMetrics = createMetrics();
      const attempts: number[] = [];
      worker(async (_job, { attempt }) => {
        attempts.push(attempt);
        return 'second';
      }, secondMetrics);
      const done = await waitFor(async () => {
        const current = await stored(job);
        return current?.finishedOn ? current : undefined;
      }, 'the stalled job to be recovered and completed');

      expect(done.returnvalue).toBe('second');
      expect(attempts).toEqual([1]);
      expect(done.stalledCounter).toBe(1);
      expect(await metricValue(secondMetrics, 'jobs_stalled_total', { queue: QUEUE })).toBe(1);
    } finally {
      ignored.open();
    }
  });
});

describe('onShutdownSignal', () => {
  function subscribe(handler: (signal: NodeJS.Signals) => Promise<void>) {
    const exits: number[] = [];
    const { logger, lines } = captureLogs();
    const unsubscribe = onShutdownSignal(handler, { logger, exit: (code) => void exits.push(code) });
    return { exits, lines, unsubscribe };
  }

  it('runs the handler once for SIGTERM then exits 0, and a second signal meanwhile exits 1 at once', async () => {
    const release = gate();
    const calls: NodeJS.Signals[] = [];
    const s = subscribe(async (signal) => {
      calls.push(signal);
      await release.promise;
    });
    try {
      process.emit('SIGTERM', 'SIGTERM');
      process.emit('SIGINT', 'SIGINT');
      expect(s.exits).toEqual([1]);
      release.open();
      await waitFor(() => s.exits.length === 2, 'the handler to finish');
      expect(calls).toEqual(['SIGTERM']);
      expect(s.exits).toEqual([1, 0]);
    } finally {
      s.unsubscribe();
    }
  });

  it('exits 1 and logs the error when the handler throws', async () => {
    const s = subscribe(async () => {
      throw new Error('database close failed');
    });
    try {
      process.emit('SIGINT', 'SIGINT');
      await waitFor(() => s.exits.length === 1, 'exit');
      expect(s.exits).toEqual([1]);
      expect(s.lines()).toEqual([expect.objectContaining({ level: 'error', signal: 'SIGINT', err: expect.objectContaining({ message: 'database close failed' }) })]);
    } finally {
      s.unsubscribe();
    }
  });

  it('stops listening to SIGTERM and SIGINT once unsubscribed', () => {
    const counts = () => [process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')];
    const [term = 0, int = 0] = counts();
    const s = subscribe(async () => undefined);
    expect(counts()).toEqual([term + 1, int + 1]);
    s.unsubscribe();
    expect(counts()).toEqual([term, int]);
  });
});
