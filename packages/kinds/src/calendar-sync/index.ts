import { defineJobKind } from '../define';
import { intake, requestSchema, RESERVATION_SYNC_KIND } from './intake';

export { RESERVATION_SYNC_KIND } from './intake';

/** Reservations -> Google Calendar, through the tenant's own Google connection. */
export const calendarSync = defineJobKind({
  name: 'calendar-sync',
  requestSchema,
  syncKind: RESERVATION_SYNC_KIND,
  intake,
  attemptTimeoutMs: () => 60_000,
  worker: async () => (await import('./worker')).calendarSyncWorker,
});
