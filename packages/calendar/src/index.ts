export { createCalendarClient, preloadCalendarLibrary } from './client';
export type {
  CalendarAttendee,
  CalendarClient,
  CalendarClientOptions,
  CalendarEvent,
  CalendarEventInput,
  CalendarEventTime,
} from './client';
export type { CalendarCredential } from './auth';
export { calendarEventId, syncReservation } from './sync-reservation';
export type { SyncReservationDeps, SyncReservationJob } from './sync-reservation';
