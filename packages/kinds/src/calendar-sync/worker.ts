import { createCalendarClient, preloadCalendarLibrary, syncReservation, type CalendarClient } from '@jobfleet/calendar';
import { PermanentError, type CalendarSyncResult } from '@jobfleet/contracts';
import { googleConnectionRepository, mayWriteCalendar, type CalendarAccess } from '@jobfleet/db';
import type { DependencyGuard } from '@jobfleet/resilience';
import { flagContext, jobDataSchema, type KindWorker } from '../define';
import { parsePayload, syncEntityOf, trackSyncStatus } from '../sync-tracking';
import { createTenantCache } from '../tenant-cache';
import { intake, requestSchema, RESERVATION_SYNC_KIND } from './intake';

const jobSchema = jobDataSchema(requestSchema);
const syncEntity = { name: 'calendar-sync', syncKind: RESERVATION_SYNC_KIND, intake };
/** Rolling out: updates patch only the fields that changed (see SyncReservationDeps.minimalPatch). */
export const MINIMAL_PATCH_FLAG = 'calendar-sync.minimal-patch';

// Calendar writes are keyed by the event id, so every call is safe to repeat inside the guard.
function guardCalendar(client: CalendarClient, guard: DependencyGuard): CalendarClient {
  const idempotent = { idempotent: true };
  return {
    insertEvent: (calendarId, event) => guard.call('insertEvent', () => client.insertEvent(calendarId, event), idempotent),
    getEvent: (calendarId, eventId) => guard.call('getEvent', () => client.getEvent(calendarId, eventId), idempotent),
    patchEvent: (calendarId, eventId, patch) => guard.call('patchEvent', () => client.patchEvent(calendarId, eventId, patch), idempotent),
    deleteEvent: (calendarId, eventId) => guard.call('deleteEvent', () => client.deleteEvent(calendarId, eventId), idempotent),
  };
}

export const calendarSyncWorker: KindWorker = {
  async start({ config, database, guards, keyring, logger, flags }) {
    // googleapis blocks the event loop for seconds when imported: at boot, not in the first job.
    await preloadCalendarLibrary();
    const { rootUrl, tokenUrl, timeoutMs } = config.calendar;
    // Each tenant acts through its own credential, resolved at the edge of the effect.
    const tenants = createTenantCache<{ client: CalendarClient; access: CalendarAccess }>({
      ttlMs: config.connectionCacheMs,
      load: async (tenantId) => {
        const connection = await guards.postgres.call('loadGoogleConnection', () => googleConnectionRepository.credential(database.db, keyring, tenantId), {
          idempotent: true,
        });
        if (connection === undefined) return undefined;
        const client = createCalendarClient({ rootUrl, tokenUrl, timeoutMs, credential: connection.credential });
        return { client: guardCalendar(client, guards.calendar), access: connection.access };
      },
    });
    const deps = { database, logger, postgres: guards.postgres };
    return {
      processor: async (job, context): Promise<CalendarSyncResult> => {
        const data = parsePayload(jobSchema, job.data);
        const { tenantId, request } = data;
        return trackSyncStatus(deps, syncEntityOf(syncEntity, tenantId, request, job), context, async () => {
          const connection = await tenants.get(tenantId, (found) => mayWriteCalendar(found.access, request.calendarId));
          // Refused before any call to Google: a tenant writes only where its own connection allows.
          if (connection === undefined) throw new PermanentError('GOOGLE_CONNECTION_MISSING', `tenant ${tenantId} has no Google Calendar connection`);
          if (!mayWriteCalendar(connection.access, request.calendarId)) {
            throw new PermanentError('CALENDAR_NOT_ALLOWED', `tenant ${tenantId} may not write to calendar ${request.calendarId}`, { details: { calendarId: request.calendarId } });
          }
          // Only an update can take the new path: other jobs are neither served nor counted for the flag.
          const minimalPatch = request.action === 'update' && (await flags.getBooleanValue(MINIMAL_PATCH_FLAG, false, flagContext(job, tenantId)));
          const result = await syncReservation(data, { calendar: connection.client, minimalPatch });
          return { result, externalRef: result.eventId };
        });
      },
    };
  },
};
