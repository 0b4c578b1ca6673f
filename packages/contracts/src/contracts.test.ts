import { BACKUP_DEFINITION_NAME as CONFIG_DEFINITION_NAME } from '@jobfleet/config';
import { BACKUP_DEFINITION_NAME } from './backup';
import { calendarSyncRequestSchema } from './calendar-sync';
import { reservationRequest } from '../../../tests/support/fixtures';

const create = reservationRequest('res-1');

describe('contracts', () => {
  it('config and contracts agree on what a backup definition may be called', () => {
    expect(BACKUP_DEFINITION_NAME.source).toBe(CONFIG_DEFINITION_NAME.source);
  });

  it('accepts a complete create and a bare cancel', () => {
    expect(calendarSyncRequestSchema.safeParse(create).success).toBe(true);
    expect(calendarSyncRequestSchema.safeParse({ reservationId: 'r', action: 'cancel', calendarId: 'c', version: 2 }).success).toBe(true);
  });

  it.each([
    ['unknown field', { ...create, colour: 'red' }, ''],
    ['end before start', { ...create, end: { ...create.end, dateTime: '2026-12-01T19:00:00-03:00' } }, 'end.dateTime'],
    ['date without offset', { ...create, start: { ...create.start, dateTime: '2026-12-01T20:00:00' } }, 'start.dateTime'],
    ['unknown time zone', { ...create, start: { ...create.start, timeZone: 'Mars/Olympus' } }, 'start.timeZone'],
    ['create without summary', { ...create, summary: undefined }, 'summary'],
    ['negative version', { ...create, version: -1 }, 'version'],
    ['bad attendee email', { ...create, attendees: [{ email: 'nope' }] }, 'attendees.0.email'],
  ])('rejects %s and names the field', (_label, body, path) => {
    const parsed = calendarSyncRequestSchema.safeParse(body);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => i.path.join('.'))).toContain(path);
  });

  it('judges a time zone the same the second time (it is remembered) and in any case Intl accepts', () => {
    const withZone = (timeZone: string) => ({ ...create, start: { ...create.start, timeZone }, end: { ...create.end, timeZone } });
    for (const attempt of [1, 2]) {
      expect([attempt, calendarSyncRequestSchema.safeParse(withZone('Asia/Kolkata')).success]).toEqual([attempt, true]);
      expect([attempt, calendarSyncRequestSchema.safeParse(withZone('asia/kolkata')).success]).toEqual([attempt, true]);
      expect([attempt, calendarSyncRequestSchema.safeParse(withZone('Asia/Atlantis')).success]).toEqual([attempt, false]);
    }
  });
});
