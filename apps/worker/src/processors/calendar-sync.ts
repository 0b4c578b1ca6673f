import { syncReservation, type CalendarClient } from '@jobfleet/calendar';
import { calendarSyncJobSchema, QUEUES, type CalendarSyncJob, type CalendarSyncResult } from '@jobfleet/contracts';
import type { JobProcessor } from '@jobfleet/queue';
import { parsePayload, trackSyncStatus, type SyncTrackingDeps } from '../sync-tracking';

export interface CalendarSyncDeps extends SyncTrackingDeps {
  calendar: CalendarClient;
}

/** Glue only: parse the job, run the domain function, keep the reservation's sync_status true. */
export function calendarSyncProcessor(deps: CalendarSyncDeps): JobProcessor<unknown, unknown> {
  return async (job, context): Promise<CalendarSyncResult> => {
    const data: CalendarSyncJob = parsePayload(calendarSyncJobSchema, job.data);
    const entity = {
      tenantId: data.tenantId,
      kind: QUEUES['calendar-sync'].syncKind,
      entityId: data.request.reservationId,
      version: data.request.version,
      jobId: job.id ?? 'unknown',
    };
    return trackSyncStatus(deps, entity, context, async () => {
      const result = await syncReservation(data, { calendar: deps.calendar });
      return { result, externalRef: result.eventId };
    });
  };
}
