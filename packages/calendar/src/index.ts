export { createCalendarClient, preloadCalendarLibrary } from './client';
export type { CalendarClient } from './client';
export { calendarEventId, syncReservation } from './sync-reservation';
