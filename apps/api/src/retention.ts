import { pruneExpiredIdempotencyKeys, type Database } from '@jobfleet/db';
import type { Logger } from '@jobfleet/observability';

/**
 * Deletes expired Idempotency-Key records on a timer so the table stays bounded. Every API replica
 * runs it; concurrent deletes of the same rows are harmless, so no coordination is needed.
 */
export function startIdempotencyRetention(options: { database: Database; logger: Logger; intervalMs: number }): {
  runOnce(): Promise<number>;
  stop(): void;
} {
  const { database, logger } = options;
  async function runOnce(): Promise<number> {
    const pruned = await pruneExpiredIdempotencyKeys(database.db);
    if (pruned > 0) logger.info({ pruned }, 'pruned expired idempotency keys');
    return pruned;
  }
  const timer = setInterval(() => {
    runOnce().catch((err: unknown) => logger.warn({ err }, 'idempotency key pruning failed; next run retries'));
  }, options.intervalMs);
  timer.unref();
  return { runOnce, stop: () => clearInterval(timer) };
}
