import type { QueueName } from '@jobfleet/contracts';
import type { JobProcessor } from '@jobfleet/queue';
import { afipSyncProcessor, type AfipSyncDeps } from './afip-sync';
import { backupProcessor, type BackupDeps } from './backup';
import { calendarSyncProcessor, type CalendarSyncDeps } from './calendar-sync';

export type ProcessorDeps = CalendarSyncDeps & AfipSyncDeps & BackupDeps;

/** One processor per queue; a queue added to contracts without one here fails to compile. */
export const processors = {
  'calendar-sync': calendarSyncProcessor,
  'afip-sync': afipSyncProcessor,
  backup: backupProcessor,
} satisfies Record<QueueName, (deps: ProcessorDeps) => JobProcessor<unknown, unknown>>;
