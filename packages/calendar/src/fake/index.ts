export { startFakeCalendar } from './server';
export type { FakeCalendar } from './server';
