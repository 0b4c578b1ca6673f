import { pruneExpiredIdempotencyKeys, pruneJobHistory, type Database } from '@jobfleet/db';
import type { Logger } from '@jobfleet/observability';

const DAY_MS = 86_400_000;

/**
 * Deletes expired Idempotency-Key records, and the rows and attempt history of finished jobs created
 * more than `jobHistoryDays` ago, on a timer so the tables stay bounded. Every API replica runs it;
 * concurrent deletes of the same rows are harmless, so no coordination is needed.
 */
export function startRetention(options: { database: Database; logger: Logger; intervalMs: number; jobHistoryDays: number }): {
  runOnce(): Promise<{ idempotencyKeys: number; jobs: number }>;
  stop(): void;
} {
  const { database, logger } = options;
  async function runOnce(): Promise<{ idempotencyKeys: number; jobs: number }> {
    const idempotencyKeys = await pruneExpiredIdempotencyKeys(database.db);
    const jobs = await pruneJobHistory(database.db, new Date(Date.now() - options.jobHistoryDays * DAY_MS));
    if (idempotencyKeys > 0 || jobs > 0) logger.info({ idempotencyKeys, jobs }, 'pruned expired idempotency keys and old job history');
    return { idempotencyKeys, jobs };
  }
  const timer = setInterval(() => {
    runOnce().catch((err: unknown) => logger.warn({ err }, 'pruning failed; next run retries'));
  }, options.intervalMs);
  timer.unref();
  return { runOnce, stop: () => clearInterval(timer) };
}
