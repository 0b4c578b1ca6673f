import type { QueueName } from '@jobfleet/contracts';
import type { JobProcessor } from '@jobfleet/queue';
import { calendarSyncProcessor, type CalendarSyncDeps } from './calendar-sync';

export type ProcessorDeps = CalendarSyncDeps;

/** One processor per queue; a queue added to contracts without one here fails to compile. */
export const processors = {
  'calendar-sync': calendarSyncProcessor,
} satisfies Record<QueueName, (deps: ProcessorDeps) => JobProcessor<unknown, unknown>>;
