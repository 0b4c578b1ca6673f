import { calendarSyncRequestSchema } from '@jobfleet/contracts';
import { googleConnectionRepository, mayWriteCalendar } from '@jobfleet/db';
import { AdmissionRefusal, defineJobKind } from '../define';

/** The `sync_status.kind` of reservations (its API has a path of its own). */
export const RESERVATION_SYNC_KIND = 'reservation';

/** Reservations -> Google Calendar, through the tenant's own Google connection. */
export const calendarSync = defineJobKind({
  name: 'calendar-sync',
  requestSchema: calendarSyncRequestSchema,
  syncKind: RESERVATION_SYNC_KIND,
  intake: {
    summary: 'Queue a reservation → Google Calendar sync',
    entityId: (request) => request.reservationId,
    version: (request) => request.version,
    defaultIdempotencyKey: (request) => `reservation:${request.reservationId}:v${request.version}`,
    defaultKeyDescription: '`reservation:<reservationId>:v<version>`',
    jobName: (request) => request.action,
    requiredScope: 'jobs:write',
    async admit({ db, tenantId }, request) {
      const access = await googleConnectionRepository.access(db, tenantId);
      if (access === undefined) throw new AdmissionRefusal(403, '/problems/connection-not-owned', `Tenant "${tenantId}" has no Google Calendar connection`);
      if (!mayWriteCalendar(access, request.calendarId)) {
        throw new AdmissionRefusal(403, '/problems/connection-not-owned', `Tenant "${tenantId}" may not write to calendar "${request.calendarId}"`);
      }
    },
  },
  attemptTimeoutMs: () => 60_000,
  worker: async () => (await import('./worker')).calendarSyncWorker,
});
