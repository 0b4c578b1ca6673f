import { loadConfig, type WorkerQueueSettings } from '@jobfleet/config';
import { CircuitOpenError, DependencyUnavailableError, DependencyUnreachableError, PermanentError, type WaitError } from '@jobfleet/contracts';
import { createMetrics, type Metrics } from '@jobfleet/observability';
import { captureLogs, metricValue, type CapturedLogs } from '@jobfleet/observability/testing';
import { DelayedError, type Job, type Queue, type Worker } from 'bullmq';
import type { RedisClient } from './connection';
import { deletePrefix, uniquePrefix } from '../../../tests/support/redis';
import { AttemptTimeoutError } from './errors';
import { closeQueues, createQueues } from './queues';
import { gate, readyConnection, testSettings, waitFor, TEST_QUEUES, type TestQueueName } from './test-support';
import { pausableGate } from './pause-gate';
import { createWorker, type AttemptGate, type AttemptHistory, type JobProcessor, type ProcessorContext } from './worker';

const QUEUE: TestQueueName = 'calendar-sync';
const config = loadConfig({ JOBS_BACKOFF_DELAY_MS: '20' });
const root = uniquePrefix('queue-worker');
let producer: RedisClient;
let connection: RedisClient;
let started = 0;
const running: Array<{ worker: Worker; queues: Record<TestQueueName, Queue> }> = [];

beforeAll(async () => {
  producer = await readyConnection('producer');
  connection = await readyConnection('worker');
});
afterEach(async () => {
  for (const { worker, queues } of running.splice(0)) {
    await worker.close();
    await closeQueues(queues);
  }
});
afterAll(async () => {
  producer.disconnect();
  connection.disconnect();
  await deletePrefix(root);
});

interface Harness {
  queue: Queue;
  worker: Worker;
  metrics: Metrics;
  logs: CapturedLogs;
  /** Resolves with the job once it is completed or failed for good. */
  finished(job: Job): Promise<Job>;
  count(outcome: string): Promise<number | undefined>;
}

/** A worker and its queue under a prefix of their own, so tests never see each other's jobs. */
function start<R>(
  processor: JobProcessor<unknown, R>,
  options: {
    settings?: Partial<WorkerQueueSettings>;
    attemptTimeoutMs?: number;
    history?: AttemptHistory;
    gate?: AttemptGate;
    asWait?: (error: Error) => WaitError | undefined;
  } = {},
): Harness {
  const prefix = `${root}:${++started}`;
  const metrics = createMetrics();
  const logs = captureLogs();
  const queues = createQueues({ names: TEST_QUEUES, connection: producer, prefix, config });
  const worker = createWorker({
    queue: QUEUE,
    connection,
    prefix,
    settings: testSettings(options.settings),
    attemptTimeoutMs: options.attemptTimeoutMs ?? 10_000,
    processor,
    logger: logs.logger,
    metrics,
    ...(options.history ? { history: options.history } : {}),
    ...(options.gate ? { gate: options.gate } : {}),
    ...(options.asWait ? { asWait: options.asWait } : {}),
  });
  running.push({ worker, queues });
  const queue = queues[QUEUE];
  return {
    queue,
    worker,
    metrics,
    logs,
    finished: (job) =>
      waitFor(async () => {
        const stored = job.id === undefined ? undefined : await queue.getJob(job.id);
        return stored?.finishedOn ? stored : undefined;
      }, `job ${String(job.id)} to finish`),
    count: (outcome) => metricValue(metrics, 'jobs_total', { queue: QUEUE, outcome }),
  };
}

type Seen = Pick<ProcessorContext, 'attempt' | 'finalAttempt'>;

describe('createWorker', () => {
  it('processes a job with its attempt context, logs it, and counts it in jobs_total, duration and wait', async () => {
    const seen: Seen[] = [];
    const h = start(async (job, { attempt, finalAttempt, signal }) => {
      seen.push({ attempt, finalAttempt });
      expect(signal.aborted).toBe(false);
      return { echoed: job.data };
    });
    const job = await h.queue.add(QUEUE, { tenantId: 'acme', n: 1 });
    const done = await h.finished(job);

    expect(await done.getState()).toBe('completed');
    expect(done.returnvalue).toEqual({ echoed: { tenantId: 'acme', n: 1 } });
    expect(seen).toEqual([{ attempt: 1, finalAttempt: false }]);
    expect(await h.count('completed')).toBe(1);
    expect(await metricValue(h.metrics, 'job_duration_seconds_count', { queue: QUEUE })).toBe(1);
    expect(await metricValue(h.metrics, 'job_wait_seconds_count', { queue: QUEUE })).toBe(1);
    const fields = { queue: QUEUE, jobId: job.id, attempt: 1, tenantId: 'acme' };
    expect(h.logs.lines()).toEqual([
      expect.objectContaining({ level: 'debug', msg: 'job started', ...fields }),
      expect.objectContaining({ level: 'info', msg: 'job completed', ...fields, durationMs: expect.any(Number) }),
    ]);
  });

  it('fails a PermanentError at once as unrecoverable, keeping its code in failedReason', async () => {
    let calls = 0;
    const h = start(async () => {
      calls++;
      throw new PermanentError('INVALID_PAYLOAD', 'reservationId is missing', { details: { field: 'reservationId' } });
    });
    const job = await h.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 5 });
    const done = await h.finished(job);

    expect(await done.getState()).toBe('failed');
    expect(calls).toBe(1);
    expect(done.attemptsMade).toBe(1);
    expect(done.failedReason).toBe('INVALID_PAYLOAD: reservationId is missing');
    expect(done.stacktrace?.[0]).toContain('PermanentError: reservationId is missing');
    expect([await h.count('failed'), await h.count('retried')]).toEqual([1, undefined]);
    const failure = h.logs.lines().find((l) => l.msg === 'job failed');
    expect(failure).toMatchObject({
      level: 'error',
      queue: QUEUE,
      jobId: job.id,
      attempt: 1,
      tenantId: 'acme',
      err: { type: 'PermanentError', code: 'INVALID_PAYLOAD', details: { field: 'reservationId' } },
    });
  });

  it('retries a transient error with backoff and completes on a later attempt', async () => {
    const seen: Seen[] = [];
    const h = start(async (_job, { attempt, finalAttempt }) => {
      seen.push({ attempt, finalAttempt });
      if (attempt === 1) throw new DependencyUnavailableError('google-calendar', 'HTTP 503');
      return 'synced';
    });
    const job = await h.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 3 });
    const done = await h.finished(job);

    expect(await done.getState()).toBe('completed');
    expect(done.returnvalue).toBe('synced');
    expect(seen).toEqual([
      { attempt: 1, finalAttempt: false },
      { attempt: 2, finalAttempt: false },
    ]);
    // BullMQ counts every finished attempt, the successful one included.
    expect(done.attemptsMade).toBe(2);
    expect([await h.count('retried'), await h.count('completed')]).toEqual([1, 1]);
    expect(h.logs.lines().find((l) => l.level === 'warn')).toMatchObject({
      msg: 'job attempt failed; it will be retried',
      attempt: 1,
      err: { code: 'DEPENDENCY_UNAVAILABLE', dependency: 'google-calendar' },
    });
  });

  it('records each run in the attempt history, its end before BullMQ finishes the job', async () => {
    const runs: { run: number; attempt: number; outcome: string | undefined; code: string | undefined }[] = [];
    let stateWhenEnded: string | undefined;
    const h = start(
      async (_job, { attempt }) => {
        if (attempt === 1) throw new DependencyUnavailableError('google-calendar', 'HTTP 503');
        return 'synced';
      },
      {
        history: {
          async record(job, { run, attempt, ended }) {
            runs.push({ run, attempt, outcome: ended?.outcome, code: (ended?.error as { code?: string } | undefined)?.code });
            if (ended?.outcome !== 'completed') return;
            // Time enough for BullMQ to complete the job, were it not waiting for this record.
            await new Promise((resolve) => setTimeout(resolve, 200));
            stateWhenEnded = await job.getState();
          },
        },
      },
    );
    const done = await h.finished(await h.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 3 }));

    expect(await done.getState()).toBe('completed');
    expect(runs).toEqual([
      { run: 1, attempt: 1, outcome: undefined, code: undefined },
      { run: 1, attempt: 1, outcome: 'retried', code: 'DEPENDENCY_UNAVAILABLE' },
      { run: 2, attempt: 2, outcome: undefined, code: undefined },
      { run: 2, attempt: 2, outcome: 'completed', code: undefined },
    ]);
    expect(stateWhenEnded).toBe('active');
  });

  it('records the completion the processor asks for before it returns, once; a run that then fails records its failure over it', async () => {
    const ends: { attempt: number; outcome: string | undefined; processorDone: boolean }[] = [];
    let processorDone = false;
    const h = start(
      async (_job, { attempt, recordCompletion }) => {
        processorDone = false;
        void recordCompletion();
        void recordCompletion();
        // Time enough for the history to see the completion while the processor still runs.
        await new Promise((resolve) => setTimeout(resolve, 100));
        processorDone = true;
        if (attempt === 1) throw new DependencyUnavailableError('google-calendar', 'HTTP 503');
        return 'synced';
      },
      {
        history: {
          record(_job, { attempt, ended }) {
            if (ended !== undefined) ends.push({ attempt, outcome: ended.outcome, processorDone });
            return Promise.resolve();
          },
        },
      },
    );
    const done = await h.finished(await h.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 2 }));

    expect(await done.getState()).toBe('completed');
    expect(ends).toEqual([
      { attempt: 1, outcome: 'completed', processorDone: false },
      { attempt: 1, outcome: 'retried', processorDone: true },
      { attempt: 2, outcome: 'completed', processorDone: false },
    ]);
  });

  it('goes on with the job when the attempt history cannot record, and says so', async () => {
    const h = start(async () => 'done', { history: { record: () => Promise.reject(new Error('postgres is away')) } });
    const done = await h.finished(await h.queue.add(QUEUE, { tenantId: 'acme' }));
    expect(await done.getState()).toBe('completed');
    expect(h.logs.lines().filter((l) => l.msg === 'could not record the run in the attempt history')).toHaveLength(2);
  });

  it('fails for good when the last attempt fails, turning a thrown string into an Error', async () => {
    const seen: Seen[] = [];
    const h = start(async (_job, { attempt, finalAttempt }) => {
      seen.push({ attempt, finalAttempt });
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what a thrown non-Error becomes is the point
      throw 'upstream exploded';
    });
    const job = await h.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 2 });
    const done = await h.finished(job);

    expect(await done.getState()).toBe('failed');
    expect(done.failedReason).toBe('upstream exploded');
    expect(seen).toEqual([
      { attempt: 1, finalAttempt: false },
      { attempt: 2, finalAttempt: true },
    ]);
    expect(done.attemptsMade).toBe(2);
    expect([await h.count('retried'), await h.count('failed')]).toEqual([1, 1]);
    expect(h.logs.lines().filter((l) => l.msg === 'job failed')).toEqual([expect.objectContaining({ level: 'error', attempt: 2 })]);
  });

  it('aborts the signal when an attempt times out and retries without waiting for a processor that ignores it', async () => {
    const ignored = gate();
    const reasons: unknown[] = [];
    const h = start(
      async (_job, { attempt, signal }) => {
        if (attempt > 1) return 'second try';
        signal.addEventListener('abort', () => reasons.push(signal.reason));
        await ignored.promise;
        return 'too late';
      },
      { attemptTimeoutMs: 200 },
    );
    try {
      const job = await h.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 3 });
      const done = await h.finished(job);

      expect(done.returnvalue).toBe('second try');
      expect(reasons).toHaveLength(1);
      expect(reasons[0]).toBeInstanceOf(AttemptTimeoutError);
      expect(reasons[0]).toMatchObject({ code: 'ATTEMPT_TIMEOUT', retryable: true, timeoutMs: 200 });
      expect([await h.count('retried'), await h.count('completed')]).toEqual([1, 1]);
    } finally {
      ignored.open();
    }
  });

  it('passes a DelayedError through: the job runs again later without spending an attempt', async () => {
    const attempts: number[] = [];
    const h = start(async (job, { attempt }) => {
      attempts.push(attempt);
      if (attempts.length > 1) return 'done';
      // What a processor does when a dependency's breaker is open.
      await job.moveToDelayed(Date.now() + 50, job.token);
      throw new DelayedError();
    });
    const job = await h.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 3 });
    const done = await h.finished(job);

    expect(done.returnvalue).toBe('done');
    expect(attempts).toEqual([1, 1]);
    expect(done.attemptsMade).toBe(1);
    expect([await h.count('delayed'), await h.count('completed'), await h.count('retried')]).toEqual([1, 1, undefined]);
  });

  it('re-delays a job whose dependency is unavailable without spending an attempt, until the job is older than its wait budget', async () => {
    const attempts: number[] = [];
    const waiting = (budgetMs: number) =>
      start(
        async (_job, { attempt }) => {
          attempts.push(attempt);
          if (attempts.length > 2) return 'done';
          throw new CircuitOpenError('calendar', 10);
        },
        { settings: { maxDependencyWaitMs: budgetMs } },
      );

    const young = waiting(60_000);
    const done = await young.finished(await young.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 3 }));
    expect(done.returnvalue).toBe('done');
    expect(attempts).toEqual([1, 1, 1]);
    expect([await young.count('delayed'), await young.count('retried')]).toEqual([2, undefined]);
    expect(await metricValue(young.metrics, 'jobs_deferred_total', { queue: QUEUE, reason: 'dependency-unavailable', dependency: 'calendar' })).toBe(2);
    expect(young.logs.lines().filter((l) => l.msg === 'job waits: re-delayed, no attempt spent')).toHaveLength(2);

    // A budget already used up: each wait is an ordinary retry and spends an attempt.
    attempts.length = 0;
    const old = waiting(0);
    const retried = await old.finished(await old.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 3 }));
    expect(retried.returnvalue).toBe('done');
    expect(attempts).toEqual([1, 2, 3]);
    expect([await old.count('delayed'), await old.count('retried')]).toEqual([undefined, 2]);
    expect(await metricValue(old.metrics, 'jobs_deferred_total', { queue: QUEUE, reason: 'dependency-unavailable', dependency: 'calendar' })).toBeUndefined();
  });

  it('makes an untyped error that asWait maps wait without spending an attempt, and leaves typed errors to their class', async () => {
    const attempts: number[] = [];
    const harness = start(
      async (_job, { attempt }) => {
        attempts.push(attempt);
        if (attempts.length <= 2) throw new Error('socket gone');
        // Typed: its class decides (a retry), whatever asWait would say of its cause.
        if (attempts.length === 3) throw new DependencyUnavailableError('postgres', 'typed', { cause: new Error('socket gone') });
        return 'done';
      },
      { asWait: (error) => (error.message === 'socket gone' ? new DependencyUnreachableError('postgres', 10, { cause: error }) : undefined) },
    );
    const done = await harness.finished(await harness.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 3 }));
    expect(done.returnvalue).toBe('done');
    expect(attempts).toEqual([1, 1, 1, 2]);
    expect([await harness.count('delayed'), await harness.count('retried')]).toEqual([2, 1]);
    expect(await metricValue(harness.metrics, 'jobs_deferred_total', { queue: QUEUE, reason: 'dependency-unavailable', dependency: 'postgres' })).toBe(2);
    const waits = harness.logs.lines().filter((l) => l.msg === 'job waits: re-delayed, no attempt spent');
    expect(waits.map((l) => l.code)).toEqual(['DEPENDENCY_UNREACHABLE', 'DEPENDENCY_UNREACHABLE']);
  });

  it("holds back a paused tenant's job without spending an attempt, counted as deferred for the pause, not for capacity", async () => {
    let paused = true;
    const h = start(async () => 'done', { gate: pausableGate((tenantId) => paused && tenantId === 'acme') });
    const job = await h.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 3 });
    const deferred = (reason: string) => metricValue(h.metrics, 'jobs_deferred_total', { queue: QUEUE, reason, dependency: 'none' });
    await waitFor(async () => ((await deferred('paused')) === 1 ? true : undefined), 'the paused job to be deferred');
    expect(await deferred('tenant-capacity')).toBeUndefined();
    expect(await h.queue.getJobState(job.id!)).toBe('delayed');

    paused = false;
    await (await h.queue.getJob(job.id!))!.promote();
    const done = await h.finished(job);
    expect([done.returnvalue, done.attemptsMade]).toEqual(['done', 1]);
  });

  it('fails a job cancelled through BullMQ at once, with JOB_CANCELLED', async () => {
    const running = gate();
    const h = start((_job, { signal }) => {
      running.open();
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true }));
    });
    const job = await h.queue.add(QUEUE, { tenantId: 'acme' }, { attempts: 3 });
    await running.promise;
    expect(h.worker.cancelJob(job.id ?? '', 'operator request')).toBe(true);
    const done = await h.finished(job);

    expect(await done.getState()).toBe('failed');
    expect(done.failedReason).toBe('JOB_CANCELLED: job cancelled: operator request');
    expect(done.attemptsMade).toBe(1);
  });
});
