import type { WorkerQueueSettings } from '@jobfleet/config';
import { DependencyWaitError, JobfleetError, PermanentError, RateLimitedError, coerceError, type WaitError } from '@jobfleet/contracts';
import type { DeferralReason, JobOutcome, Logger, Metrics } from '@jobfleet/observability';
import { trace } from '@opentelemetry/api';
import { DelayedError, RATE_LIMIT_ERROR, UnrecoverableError, Worker, type Job, type Telemetry } from 'bullmq';
import type { RedisClient } from './connection';
import { decideAfterError, retryOrFail, type AttemptDecision } from './attempt-policy';
import { deferWithoutAttempt } from './defer';
import { requestIdOf, tenantOf } from './job-tenant';
import { AttemptTimeoutError, WorkerBusyError, WorkerClosingError } from './errors';

export interface ProcessorContext {
  /**
   * Fires when the attempt passes its timeout (reason AttemptTimeoutError), the job is cancelled
   * (PermanentError JOB_CANCELLED) or the worker closes hard (WorkerClosingError). The attempt ends
   * then, whether or not the processor stops.
   */
  signal: AbortSignal;
  /** 1 for the first attempt. */
  attempt: number;
  /** No attempt is left after this one: a failure now is final. */
  finalAttempt: boolean;
  /** The worker's logger bound to this job: queue, jobId, attempt, tenantId. */
  logger: Logger;
  /**
   * Records the run's end as completed now, once the effect happened, instead of after the
   * processor returns: called right before the processor's last write, both rows go out in one
   * flush and the job waits for one. If the run then ends otherwise, that end is recorded over it.
   * Never rejects (as every history write).
   */
  recordCompletion: () => Promise<void>;
}

export type JobProcessor<T, R> = (job: Job<T, R>, context: ProcessorContext) => Promise<R>;

/** An attempt the gate holds back: how long the job waits, and why (the `reason` of `jobs_deferred_total`). */
export interface GateDeferral {
  delayMs: number;
  reason: Extract<DeferralReason, 'paused' | 'tenant-capacity'>;
}

/**
 * Fleet-wide admission of each attempt (a pause, pause-gate.ts; a tenant's running-jobs quota,
 * tenant-gate.ts). `enter` answers undefined to run the attempt now, or a deferral: the job is
 * re-delayed without spending an attempt. `leave` runs when an entered attempt ends; `finished`
 * when the job completed or failed for good.
 */
export interface AttemptGate {
  enter(job: Job): Promise<GateDeferral | undefined>;
  leave(job: Job, finished: boolean): Promise<void>;
}

/** One run of a job's processor, as the attempt history records it. */
export interface AttemptRun {
  /** BullMQ's attemptsStarted: a stalled run run again is another run. */
  run: number;
  /** The retry policy's attempt number, 1 for the first. */
  attempt: number;
  startedAt: Date;
  /** How the run ended; undefined when it starts. */
  ended?: { at: Date; outcome: JobOutcome; error: Error | undefined };
}

/** Where each run's start and end are kept (Postgres job_attempts), for every kind alike. */
export interface AttemptHistory {
  record(job: Job, run: AttemptRun): Promise<void>;
}

export interface CreateWorkerOptions<T, R> {
  queue: string;
  /**
   * A worker-role connection. BullMQ sends commands on it and duplicates it for the blocking
   * fetch; closing the worker leaves it open for its owner to close afterwards.
   */
  connection: RedisClient;
  prefix: string;
  settings: WorkerQueueSettings;
  /** Hard bound of one attempt (`QUEUES[queue].attemptTimeoutMs`). */
  attemptTimeoutMs: number;
  /**
   * Runs one attempt. A PermanentError (any JobfleetError with `retryable: false`) or
   * UnrecoverableError fails the job at once; DelayedError and BullMQ's other flow errors pass
   * through; anything else is retried with the job's backoff until its attempts run out.
   */
  processor: JobProcessor<T, R>;
  logger: Logger;
  metrics: Metrics;
  /** Start fetching jobs at once. Default true; otherwise call `worker.run()`. */
  autorun?: boolean;
  /**
   * Records the attempt policy's decision where the job's status lives (sync_status), before it is
   * carried out; a failure to record is logged, and the decision stands.
   */
  onDecision?: (job: Job<T, R>, decision: AttemptDecision, error: Error, attempt: number) => Promise<void>;
  /** Errors that fail at once although untyped (see AttemptPolicySettings.isPermanent). */
  isPermanent?: (error: Error) => boolean;
  /**
   * The wait an untyped error stands for, if it does (a driver error of an unreachable
   * dependency): the job then waits without spending an attempt, as for a typed wait.
   */
  asWait?: (error: Error) => WaitError | undefined;
  /**
   * A job failed without its processor deciding it (stalled more than maxStalledCount times):
   * record that wherever the processor would have, so the job's entity does not stay `running`.
   */
  onUnprocessedFailure?: (job: Job<T, R>, error: Error) => Promise<void>;
  gate?: AttemptGate;
  /**
   * A consumer span per run of a job, child of the span that enqueued it (Tracing.queueTelemetry).
   * Default: none.
   */
  telemetry?: Telemetry | undefined;
  /**
   * Records each run: its start without waiting, its end before BullMQ moves the job on (so
   * Postgres does not lag Redis for a finished job). A failure to record is logged; the job goes on.
   */
  history?: AttemptHistory;
}

// Whether a running slot is free is unknown: counted as the quota it could not read.
const GATE_UNAVAILABLE: GateDeferral = { delayMs: 5000, reason: 'tenant-capacity' };

/** The reason a hard close gives BullMQ's per-job abort controllers. */
const CLOSING_HARD = 'jobfleet:worker-closing-hard';

class JobfleetWorker<T, R> extends Worker<T, R> {
  /**
   * BullMQ's close(true) neither aborts running processors nor, when a graceful close() is already
   * pending, forces anything: it returns the pending promise. Aborting the attempts first ends them
   * (left active for stalled-job recovery), which lets either close finish.
   */
  override close(force = false): Promise<void> {
    if (force) this.cancelAllJobs(CLOSING_HARD);
    return super.close(force);
  }
}

/** A BullMQ worker around `processor`: attempt timeout, error mapping, metrics and logs. */
export function createWorker<T, R>(options: CreateWorkerOptions<T, R>): Worker<T, R> {
  const { queue, metrics, processor, attemptTimeoutMs } = options;
  const logger = options.logger.child({ queue });
  // Errors this wrapper already counted and logged; the `failed` event reports only the others.
  const reported = new WeakSet<Error>();

  /**
   * Frees the attempt's running slot without holding the job up: BullMQ completes it meanwhile. A
   * slot freed a moment late only leaves the tenant one job fewer for that moment; a crashed
   * worker's slot ends with its lease.
   */
  function leaveGate(job: Job<T, R>, finished: boolean): void {
    options.gate?.leave(job, finished).catch((leaveError: unknown) =>
      // The slot's lease ends by itself; until then the tenant runs one job fewer.
      logger.warn({ err: coerceError(leaveError), jobId: job.id }, 'could not free the running slot of the job'),
    );
  }

  async function runAttempt(job: Job<T, R>, token: string | undefined, jobSignal: AbortSignal | undefined): Promise<R> {
    const deferral = await options.gate?.enter(job).catch((enterError: unknown) => {
      // Postgres or Redis trouble: ask again later, no attempt spent.
      logger.warn({ err: coerceError(enterError), jobId: job.id }, 'could not take a running slot; the job waits');
      return GATE_UNAVAILABLE;
    });
    if (deferral !== undefined) {
      metrics.jobsTotal.inc({ queue, outcome: 'delayed' });
      metrics.jobsDeferred.inc({ queue, reason: deferral.reason, dependency: 'none' });
      return deferWithoutAttempt(job, deferral.delayMs, token);
    }
    let finished = false;
    try {
      const result = await runEnteredAttempt(job, token, jobSignal);
      finished = true;
      return result;
    } catch (error) {
      // BullMQ fails the job for good on an UnrecoverableError, or when this was its last attempt.
      finished = error instanceof UnrecoverableError || (!isFlowControl(coerceError(error)) && isFinalAttempt(job));
      throw error;
    } finally {
      leaveGate(job, finished);
    }
  }

  async function runEnteredAttempt(job: Job<T, R>, token: string | undefined, jobSignal: AbortSignal | undefined): Promise<R> {
    const attempt = job.attemptsMade + 1;
    const finalAttempt = isFinalAttempt(job);
    const bindings = { jobId: job.id, attempt, tenantId: tenantOf(job.data), requestId: requestIdOf(job.data) };
    // BullMQ's consumer span of this run, when tracing: what it is in the semantic conventions' words, and whose.
    trace.getActiveSpan()?.setAttributes({
      'messaging.system': 'bullmq',
      'messaging.operation.type': 'process',
      'messaging.destination.name': queue,
      'messaging.message.id': job.id,
      'jobfleet.job.kind': queue,
      'jobfleet.job.attempt': attempt,
      // Runs include those that waited without spending an attempt (a rate limit) and stalled ones.
      'jobfleet.job.run': job.attemptsStarted,
      ...(bindings.tenantId === undefined ? {} : { 'jobfleet.tenant.id': bindings.tenantId }),
      ...(bindings.requestId === undefined ? {} : { 'jobfleet.request.id': bindings.requestId }),
    });
    // A child logger costs more than most jobs: made only for a job that logs more than its start and end.
    let bound: Logger | undefined;
    const jobLogger = (): Logger => (bound ??= logger.child(bindings));
    // Stalled re-runs and retries start again later; only the first start measures queueing.
    if (job.attemptsStarted <= 1) metrics.jobWait.observe({ queue }, waitSeconds(job));
    logger.debug(bindings, 'job started');
    const started = performance.now();
    const run: AttemptRun = { run: job.attemptsStarted, attempt, startedAt: new Date() };
    void recordRun(job, run);
    let runEnded: Promise<void> | undefined;
    let completionRecorded: Promise<void> | undefined;
    const record = (outcome: JobOutcome, error?: Error): number => {
      runEnded = outcome === 'completed' && completionRecorded !== undefined ? completionRecorded : recordRun(job, { ...run, ended: { at: new Date(), outcome, error } });
      const seconds = (performance.now() - started) / 1000;
      metrics.jobsTotal.inc({ queue, outcome });
      metrics.jobDuration.observe({ queue }, seconds);
      return Math.round(seconds * 1000);
    };

    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new AttemptTimeoutError(attemptTimeoutMs)), attemptTimeoutMs);
    const onJobAbort = () =>
      controller.abort(
        jobSignal?.reason === CLOSING_HARD
          ? new WorkerClosingError()
          : new PermanentError('JOB_CANCELLED', `job cancelled: ${String(jobSignal?.reason)}`),
      );
    if (jobSignal?.aborted) onJobAbort();
    jobSignal?.addEventListener('abort', onJobAbort, { once: true });
    try {
      const result = await Promise.race([
        rejectWhenAborted(controller.signal),
        processor(job, {
          signal: controller.signal,
          attempt,
          finalAttempt,
          get logger() {
            return jobLogger();
          },
          recordCompletion: () => (completionRecorded ??= recordRun(job, { ...run, ended: { at: new Date(), outcome: 'completed', error: undefined } })),
        }),
      ]);
      logger.info({ ...bindings, durationMs: record('completed') }, 'job completed');
      return result;
    } catch (thrown) {
      // Once the signal fired, its reason is the outcome, whatever the processor threw in reaction.
      const raw = coerceError(controller.signal.aborted ? controller.signal.reason : thrown);
      const error = (raw instanceof JobfleetError ? undefined : options.asWait?.(raw)) ?? raw;
      if (error instanceof WorkerClosingError) {
        jobLogger().warn({ durationMs: record('interrupted', error) }, 'job interrupted by a hard close; stalled-job recovery will run it again');
        // DelayedError makes BullMQ leave the job as it is: active, with a lock nobody renews,
        // until another worker's stalled check moves it back to wait. No attempt is spent.
        throw new DelayedError(error.message);
      }
      if (isFlowControl(error)) {
        jobLogger().debug({ durationMs: record('delayed') }, 'job re-scheduled by its processor');
        throw error;
      }
      const facts = { attemptsMade: job.attemptsMade, maxAttempts: job.opts.attempts ?? 1, createdAt: job.timestamp, now: Date.now() };
      let decision = decideAfterError(error, facts, { maxWaitMs: options.settings.maxDependencyWaitMs, isPermanent: options.isPermanent });
      const recordDecision = (decided: AttemptDecision) =>
        options.onDecision?.(job, decided, error, attempt).catch((recordError: unknown) =>
          jobLogger().error({ err: coerceError(recordError), decision: decided.action }, 'could not record the attempt outcome'),
        );
      await recordDecision(decision);
      if (decision.action === 'wait') {
        const deferred = await deferWithoutAttempt(job, decision.delayMs, token).catch((thrownByDefer: unknown) => coerceError(thrownByDefer));
        if (isFlowControl(deferred)) {
          metrics.jobsDeferred.inc({ queue, ...deferralOf(error) });
          jobLogger().info({ reason: decision.reason, code: codeOf(error), delayMs: decision.delayMs, durationMs: record('delayed', error) }, 'job waits: re-delayed, no attempt spent');
          throw deferred;
        }
        // Could not re-delay it (Redis trouble too): an ordinary retry with backoff, or the end.
        decision = retryOrFail(facts);
        await recordDecision(decision);
      }
      // BullMQ fails a job whose attempts ran out by itself; a permanent error must stop it early.
      const toThrow = decision.action === 'fail' && decision.permanent ? unrecoverable(error) : error;
      const durationMs = record(decision.action === 'fail' ? 'failed' : 'retried', error);
      if (decision.action === 'fail') jobLogger().error({ err: error, durationMs }, 'job failed');
      else jobLogger().warn({ err: error, durationMs }, 'job attempt failed; it will be retried');
      reported.add(toThrow);
      throw toThrow;
    } finally {
      clearTimeout(timer);
      jobSignal?.removeEventListener('abort', onJobAbort);
      await runEnded;
    }
  }

  /** Never rejects: the history is for people looking back, not a reason to hold a job up. */
  function recordRun(job: Job<T, R>, run: AttemptRun): Promise<void> {
    return (options.history?.record(job, run) ?? Promise.resolve()).catch((recordError: unknown) =>
      logger.warn({ err: coerceError(recordError), jobId: job.id, run: run.run }, 'could not record the run in the attempt history'),
    );
  }

  const worker = new JobfleetWorker<T, R>(
    queue,
    // Three parameters: BullMQ only creates the per-job abort signal for processors that declare it.
    (job, token, signal) => runAttempt(job, token, signal),
    {
      connection: options.connection,
      prefix: options.prefix,
      autorun: options.autorun ?? true,
      concurrency: options.settings.concurrency,
      lockDuration: options.settings.lockDurationMs,
      stalledInterval: options.settings.stalledIntervalMs,
      maxStalledCount: options.settings.maxStalledCount,
      ...(options.telemetry ? { telemetry: options.telemetry } : {}),
    },
  );
  worker.on('failed', (job, err) => {
    if (reported.has(err)) return;
    // Failures BullMQ decides without running the processor, e.g. stalled more than maxStalledCount.
    metrics.jobsTotal.inc({ queue, outcome: 'failed' });
    logger.error({ err, jobId: job?.id, tenantId: tenantOf(job?.data) }, 'job failed');
    if (job) leaveGate(job, true);
    // The run the stalled job was last in ends here, failed.
    if (job) void recordRun(job, { run: job.attemptsStarted, attempt: job.attemptsMade, startedAt: new Date(job.processedOn ?? Date.now()), ended: { at: new Date(), outcome: 'failed', error: err } });
    if (job && options.onUnprocessedFailure) {
      options.onUnprocessedFailure(job, err).catch((recordError: unknown) =>
        logger.error({ err: recordError, jobId: job.id }, 'could not record a failure the processor never saw'),
      );
    }
  });
  worker.on('stalled', (jobId) => {
    metrics.jobsStalled.inc({ queue });
    logger.warn({ jobId }, 'job stalled (its worker lost the lock); moved back to wait');
  });
  worker.on('error', (err) => logger.error({ err }, 'worker error'));
  return worker;
}

function rejectWhenAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    signal.addEventListener('abort', () => reject(coerceError(signal.reason)), { once: true });
  });
}

/** No attempt is left after the one now running: BullMQ fails the job for good if it fails. */
function isFinalAttempt(job: Job): boolean {
  return job.attemptsMade + 1 >= Math.max(job.opts.attempts ?? 1, 1);
}

/** Keeps the code in BullMQ's failedReason and the original error (with its stack) as cause. */
function unrecoverable(error: Error): UnrecoverableError {
  if (error instanceof UnrecoverableError) return error;
  const wrapped = new UnrecoverableError(`${codeOf(error)}: ${error.message}`);
  wrapped.cause = error;
  // BullMQ stores this stack with the failed job: show where the permanent error arose.
  if (error.stack) wrapped.stack = error.stack;
  return wrapped;
}

/** The labels of `jobs_deferred_total` for an error the attempt policy made wait; dependency names are the config's, so bounded. */
function deferralOf(error: Error): { reason: DeferralReason; dependency: string } {
  if (error instanceof DependencyWaitError) return { reason: 'dependency-unavailable', dependency: error.dependency };
  if (error instanceof RateLimitedError) return { reason: 'rate-limited', dependency: error.dependency };
  if (error instanceof WorkerBusyError) return { reason: 'worker-busy', dependency: 'none' };
  // The locks package's LockUnavailableError (this package does not depend on it).
  if (codeOf(error) === 'LOCK_UNAVAILABLE') return { reason: 'lock-busy', dependency: 'none' };
  return { reason: 'other', dependency: 'none' };
}

function codeOf(error: Error): string {
  return error instanceof JobfleetError ? error.code : 'UNEXPECTED';
}

// BullMQ matches these by name or message too (worker.handleFailed), as a bundled copy may differ.
const FLOW_ERROR_NAMES = new Set(['DelayedError', 'WaitingError', 'WaitingChildrenError']);

/** Errors a processor throws after moving its job itself (moveToDelayed, moveToWait, ...). */
function isFlowControl(error: Error): boolean {
  return FLOW_ERROR_NAMES.has(error.name) || error.message === RATE_LIMIT_ERROR;
}

/** Enqueue (plus any requested delay) to start, in seconds. */
// BullMQ types `delay` as a number but leaves it undefined on a job added without one.
function waitSeconds(job: Pick<Job, 'timestamp' | 'processedOn'> & { delay?: number }): number {
  const readyAt = job.timestamp + (job.delay ?? 0);
  return Math.max(0, (job.processedOn ?? Date.now()) - readyAt) / 1000;
}
