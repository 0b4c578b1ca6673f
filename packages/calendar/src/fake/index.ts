export { startFakeCalendar } from './server';
export type { FakeCalendar, FakeCalendarFault, FakeCalendarOptions } from './server';
export type { FakeCalendarEvent } from './event-store';
