/** Every queue the fleet knows. Adding one here forces a processor to exist (see the worker registry). */
export const QUEUE_NAMES = ['calendar-sync', 'afip-sync', 'backup'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

export function isQueueName(value: string): value is QueueName {
  return (QUEUE_NAMES as readonly string[]).includes(value);
}

/** Static per-queue facts; tunables (attempts, concurrency, retention) come from config. */
export interface QueueDefinition {
  name: QueueName;
  /**
   * The `sync_status.kind` a job of this queue reports under; null for a queue whose runs keep
   * their own table (backups).
   */
  syncKind: string | null;
  /**
   * Hard upper bound for one attempt of a job, enforced by the worker; null where it comes from
   * config (a backup's is derived from BACKUP_TIMEOUT_SECONDS).
   */
  attemptTimeoutMs: number | null;
}

export const QUEUES = {
  'calendar-sync': { name: 'calendar-sync', syncKind: 'reservation', attemptTimeoutMs: 60_000 },
  // A few AFIP calls of AFIP_TIMEOUT_SECONDS each, plus the wait for the numbering lock.
  'afip-sync': { name: 'afip-sync', syncKind: 'afip-invoice', attemptTimeoutMs: 180_000 },
  backup: { name: 'backup', syncKind: null, attemptTimeoutMs: null },
} as const satisfies Readonly<Record<QueueName, QueueDefinition>>;
