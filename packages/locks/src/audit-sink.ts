import { appendLockAuditEvents, type Database, type LockAuditInput } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';

/** Where the lock manager sends its audit events. `record` must neither throw nor block. */
export interface LockAuditSink {
  record(event: LockAuditInput): void;
}

export interface BufferedAuditSink extends LockAuditSink {
  /** Events recorded and not yet written (being written included). */
  readonly buffered: number;
  /**
   * Writes now and resolves once every buffered event is written (waiting through retries while
   * Postgres is down). For tests and shutdown; after `close` it resolves at once.
   */
  flush(): Promise<void>;
  /**
   * Flushes for up to `timeoutMs` (default 5000), then stops: what is still unwritten is counted
   * as dropped and logged, and later events are dropped.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

export interface BufferedAuditSinkOptions {
  database: Database;
  metrics: Metrics;
  logger: Logger;
  /** Events kept in memory while Postgres is slow or down; beyond it the oldest are dropped. Default 10 000. */
  maxBuffered?: number;
  /** How long an event may wait for others to share its write (group commit). Default 200 ms. */
  flushIntervalMs?: number;
  /** Events per transaction. Default 500. */
  batchSize?: number;
  /** Cap of the exponential backoff between failed writes. Default 10 000 ms. */
  maxBackoffMs?: number;
}

// A full buffer can drop an event per lock operation: log the count now and then, not each one.
const DROP_LOG_INTERVAL_MS = 10_000;

/**
 * Audit events go into an in-memory FIFO and are appended to Postgres in batches in the
 * background, in the order they were recorded, so a lock operation never waits for (or fails
 * with) Postgres. A failed batch goes back to the front of the queue and is retried with jittered
 * exponential backoff; a batch is one transaction, so a retry never duplicates rows.
 */
export function createBufferedAuditSink(options: BufferedAuditSinkOptions): BufferedAuditSink {
  const { database, metrics, logger } = options;
  const maxBuffered = options.maxBuffered ?? 10_000;
  const flushIntervalMs = options.flushIntervalMs ?? 200;
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 500, maxBuffered));
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;

  let queue: LockAuditInput[] = [];
  let inFlight: readonly LockAuditInput[] = [];
  let timer: NodeJS.Timeout | undefined;
  let writing = false;
  let closed = false;
  let failures = 0;
  let droppedSinceLog = 0;
  let lastDropLogAt = -Infinity;
  let idle: (() => void)[] = [];

  const buffered = () => queue.length + inFlight.length;

  function drop(count: number, why: string) {
    if (count === 0) return;
    metrics.lockAuditWriteFailures.inc({ reason: 'dropped' }, count);
    metrics.lockAuditBuffered.dec(count);
    droppedSinceLog += count;
    const now = Date.now();
    if (now - lastDropLogAt >= DROP_LOG_INTERVAL_MS || closed) {
      logger.error({ dropped: droppedSinceLog, buffered: buffered(), maxBuffered }, `lock audit events dropped: ${why}`);
      droppedSinceLog = 0;
      lastDropLogAt = now;
    }
  }

  function schedule(delayMs: number) {
    if (timer || writing || closed) return;
    timer = setTimeout(() => void drain(), delayMs);
    // Buffered audit events never keep a process alive; shutdown calls close() to write them.
    timer.unref();
  }

  function settleIdle() {
    if (buffered() > 0 && !closed) return;
    const waiting = idle;
    idle = [];
    for (const resolve of waiting) resolve();
  }

  async function drain() {
    timer = undefined;
    if (writing) return;
    writing = true;
    try {
      while (queue.length > 0) {
        inFlight = queue.splice(0, batchSize);
        try {
          await appendLockAuditEvents(database.db, inFlight);
        } catch (err) {
          failures += 1;
          metrics.lockAuditWriteFailures.inc({ reason: 'error' });
          queue = [...inFlight, ...queue];
          inFlight = [];
          if (closed) {
            drop(queue.length, 'the sink closed while Postgres refused them');
            queue = [];
          } else {
            // Events recorded meanwhile may have filled the buffer behind the failed batch.
            const excess = Math.max(0, queue.length - maxBuffered);
            queue.splice(0, excess);
            drop(excess, 'buffer full (Postgres slow or down)');
            const backoffMs = Math.min(flushIntervalMs * 2 ** failures, maxBackoffMs) * (0.5 + Math.random() / 2);
            logger.warn({ err, buffered: buffered(), retryInMs: Math.round(backoffMs) }, 'lock audit write failed; events stay buffered');
            writing = false;
            schedule(backoffMs);
          }
          return;
        }
        metrics.lockAuditBuffered.dec(inFlight.length);
        inFlight = [];
        failures = 0;
      }
    } finally {
      writing = false;
      settleIdle();
    }
  }

  function flush(): Promise<void> {
    if (buffered() === 0 || closed) return Promise.resolve();
    const done = new Promise<void>((resolve) => idle.push(resolve));
    // Skips the group-commit wait or the backoff: write now.
    if (!writing) {
      clearTimeout(timer);
      void drain();
    }
    return done;
  }

  async function close({ timeoutMs = 5000 }: { timeoutMs?: number } = {}): Promise<void> {
    if (closed) return;
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([flush(), new Promise((resolve) => (deadline = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(deadline);
    closed = true;
    clearTimeout(timer);
    timer = undefined;
    // An in-flight write may still land; what is queued behind it never will.
    drop(queue.length, 'unwritten at shutdown');
    queue = [];
    settleIdle();
  }

  return {
    get buffered() {
      return buffered();
    },

    record(event) {
      try {
        if (closed) {
          metrics.lockAuditBuffered.inc();
          drop(1, 'the sink is closed');
          return;
        }
        queue.push(event);
        metrics.lockAuditBuffered.inc();
        // The oldest not already being written goes (the new event itself when all others are).
        if (buffered() > maxBuffered) {
          queue.shift();
          drop(1, 'buffer full (Postgres slow or down)');
        }
        schedule(flushIntervalMs);
      } catch (err) {
        logger.error({ err }, 'lock audit event could not be buffered');
      }
    },

    flush,
    close,
  };
}
