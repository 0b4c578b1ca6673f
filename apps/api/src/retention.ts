import type { Config } from '@jobfleet/config';
import { runRetention, type Database, type RetentionReport } from '@jobfleet/db';
import type { Logger } from '@jobfleet/observability';
import type { Keyring } from '@jobfleet/secrets';

/**
 * Runs the retention rules on a timer (idempotency records, finished sync_status rows, finished
 * jobs' history, the admin audit, lock_audit months). Every API replica runs it; concurrent passes are harmless (see
 * runRetention), so no coordination is needed.
 */
export function startRetention(options: {
  database: Database;
  logger: Logger;
  keyring: Keyring;
  policy: Config['retention'];
}): { runOnce(now?: Date): Promise<RetentionReport>; stop(): void } {
  const { database, logger, keyring, policy } = options;
  async function runOnce(now: Date = new Date()): Promise<RetentionReport> {
    const report = await runRetention(database.db, policy, { keyring, now });
    const removed =
      report.idempotencyKeys + report.syncStatus + report.jobs + report.adminAudit + report.deprecatedUsage + report.lockAuditMonthsDropped.length;
    if (removed > 0 || report.lockAuditPartitionsCreated.length > 0) logger.info({ retention: report }, 'retention pass');
    return report;
  }
  const timer = setInterval(() => {
    runOnce().catch((err: unknown) => logger.warn({ err }, 'retention pass failed; the next one retries'));
  }, policy.intervalMs);
  timer.unref();
  return { runOnce, stop: () => clearInterval(timer) };
}
