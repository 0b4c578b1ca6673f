import { syncReservation } from '@jobfleet/calendar';
import { calendarSyncJobSchema, QUEUES, type CalendarSyncJob, type CalendarSyncResult } from '@jobfleet/contracts';
import type { JobProcessor } from '@jobfleet/queue';
import { parsePayload, trackSyncStatus, type SyncTrackingDeps } from '../sync-tracking';
import type { TenantConnections } from '../tenant-connections';

export interface CalendarSyncDeps extends SyncTrackingDeps {
  connections: Pick<TenantConnections, 'calendarFor'>;
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
      // The tenant's own credential, for a calendar it may write to; refused before any call otherwise.
      const calendar = await deps.connections.calendarFor(data.tenantId, data.request.calendarId);
      const result = await syncReservation(data, { calendar });
      return { result, externalRef: result.eventId };
    });
  };
}
