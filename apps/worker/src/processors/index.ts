import type { QueueName } from '@jobfleet/contracts';
import type { JobProcessor } from '@jobfleet/queue';
import { afipSyncProcessor, type AfipSyncDeps } from './afip-sync';
import { calendarSyncProcessor, type CalendarSyncDeps } from './calendar-sync';

export type ProcessorDeps = CalendarSyncDeps & AfipSyncDeps;

/** One processor per queue; a queue added to contracts without one here fails to compile. */
export const processors = {
  'calendar-sync': calendarSyncProcessor,
  'afip-sync': afipSyncProcessor,
} satisfies Record<QueueName, (deps: ProcessorDeps) => JobProcessor<unknown, unknown>>;
