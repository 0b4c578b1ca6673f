import { calendarSyncRequestSchema, type CalendarSyncRequest } from '@jobfleet/contracts';
import { googleConnectionRepository, mayWriteCalendar } from '@jobfleet/db';
import { AdmissionRefusal, type KindIntake } from '../define';

/** The `sync_status.kind` of reservations (its API has a path of its own). */
export const RESERVATION_SYNC_KIND = 'reservation';

export const requestSchema = calendarSyncRequestSchema;

/** How the API takes reservations: entity, version, default key, and the tenant's calendar access. */
export const intake: KindIntake<CalendarSyncRequest> = {
  summary: 'Queue a reservation → Google Calendar sync',
  entityId: (request) => request.reservationId,
  version: (request) => request.version,
  defaultIdempotencyKey: (request) => `reservation:${request.reservationId}:v${request.version}`,
  defaultKeyDescription: '`reservation:<reservationId>:v<version>`',
  jobName: (request) => request.action,
  requiredScope: 'jobs:write',
  admissionKey: (request) => request.calendarId,
  async admit({ db, tenantId }, request) {
    const access = await googleConnectionRepository.access(db, tenantId);
    if (access === undefined) throw new AdmissionRefusal(403, '/problems/connection-not-owned', `Tenant "${tenantId}" has no Google Calendar connection`);
    if (!mayWriteCalendar(access, request.calendarId)) {
      throw new AdmissionRefusal(403, '/problems/connection-not-owned', `Tenant "${tenantId}" may not write to calendar "${request.calendarId}"`);
    }
  },
};
