import { JobfleetError, WaitError } from '@jobfleet/contracts';

/** An attempt ran past its queue's `attemptTimeoutMs`; retried like any transient failure. */
export class AttemptTimeoutError extends JobfleetError {
  readonly code = 'ATTEMPT_TIMEOUT';
  readonly retryable = true;
  constructor(readonly timeoutMs: number) {
    super(`attempt did not finish within ${timeoutMs} ms`, { details: { timeoutMs } });
  }
}

/**
 * The worker is closing hard: the attempt is abandoned where it stands, still active in Redis,
 * and stalled-job recovery runs it again elsewhere. Processors see it as their signal's reason.
 */
export class WorkerClosingError extends JobfleetError {
  readonly code = 'WORKER_CLOSING';
  readonly retryable = true;
  constructor() {
    super('worker closing hard: attempt left to stalled-job recovery');
  }
}

/** This worker process cannot take the job now (over its memory limit): it waits for later or for a worker with room. */
export class WorkerBusyError extends WaitError {
  readonly code = 'WORKER_BUSY';
  readonly waitReason: string;
  constructor(reason: string, retryAfterMs: number) {
    super(retryAfterMs, `worker busy: ${reason}`);
    this.waitReason = `worker busy (${reason})`;
  }
}
