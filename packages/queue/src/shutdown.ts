import type { Logger } from '@jobfleet/observability';
import type { Worker } from 'bullmq';

/**
 * How long the hard close after SHUTDOWN_TIMEOUT_MS may take by default: a process's stop grace
 * (Kubernetes terminationGracePeriodSeconds, compose stop_grace_period) must cover both.
 */
export const HARD_CLOSE_TIMEOUT_MS = 5000;

export interface CloseWorkersOptions {
  /** How long active jobs get to finish (SHUTDOWN_TIMEOUT_MS). */
  timeoutMs: number;
  logger: Logger;
  /** After the hard close, how long to wait for it (it needs Redis) before giving up. Default HARD_CLOSE_TIMEOUT_MS. */
  forceTimeoutMs?: number;
}

/**
 * Stops the workers taking jobs and gives active ones `timeoutMs` to finish; then closes them hard:
 * the jobs still running are abandoned in Redis and stalled-job recovery (another worker, or this
 * one after a restart) runs them again. `forced` says whether that happened. For workers made by
 * createWorker: their close(true) also ends the running attempts, which BullMQ's alone does not.
 */
export async function closeWorkersGracefully(
  workers: readonly Worker[],
  options: CloseWorkersOptions,
): Promise<{ forced: boolean }> {
  const { logger } = options;
  const closeAll = (force: boolean) =>
    Promise.all(
      workers.map((worker) =>
        worker.close(force).catch((err: unknown) => logger.error({ err, queue: worker.name, force }, 'closing a worker failed')),
      ),
    );
  if (await settlesWithin(closeAll(false), options.timeoutMs)) return { forced: false };

  logger.warn({ timeoutMs: options.timeoutMs }, 'active jobs did not finish in time; closing workers hard');
  const forceTimeoutMs = options.forceTimeoutMs ?? HARD_CLOSE_TIMEOUT_MS;
  if (!(await settlesWithin(closeAll(true), forceTimeoutMs))) {
    logger.error({ forceTimeoutMs }, 'workers still closing after the hard close; giving up on them');
  }
  return { forced: true };
}

async function settlesWithin(work: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, timeoutMs, false);
  });
  try {
    return await Promise.race([work.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

export interface ShutdownSignalOptions {
  logger: Logger;
  /** Ends the process; default `process.exit`. Tests pass their own. */
  exit?: (code: number) => void;
}

/**
 * On SIGTERM or SIGINT runs `handler` once, then exits 0 (1 if it threw). A second signal while it
 * runs exits 1 at once (an operator pressing Ctrl-C twice). Returns a function that unsubscribes.
 */
export function onShutdownSignal(
  handler: (signal: NodeJS.Signals) => Promise<void>,
  options: ShutdownSignalOptions,
): () => void {
  const { logger } = options;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let shuttingDown = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (shuttingDown) {
      logger.warn({ signal }, 'second shutdown signal: exiting now');
      exit(1);
      return;
    }
    shuttingDown = true;
    Promise.resolve()
      .then(() => handler(signal))
      .then(
        () => exit(0),
        (err: unknown) => {
          logger.error({ err, signal }, 'shutdown failed');
          exit(1);
        },
      );
  };
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, onSignal);
  return () => {
    for (const signal of SHUTDOWN_SIGNALS) process.off(signal, onSignal);
  };
}
