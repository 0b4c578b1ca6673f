import {
  DependencyUnavailableError,
  PermanentError,
  RateLimitedError,
  calendarSyncRequestSchema,
  type CalendarSyncRequest,
} from '@jobfleet/contracts';
import { createCalendarClient, type CalendarClient, type CalendarEvent } from './client';
import { startFakeCalendar, type FakeCalendar } from './fake/index';
import { calendarEventId, syncReservation } from './sync-reservation';

const TENANT = 'tenant-a';
const CALENDAR_ID = 'restaurant@example.com';

/** A valid request (parsed by the real schema): reservation r-1, version 1, unless overridden. */
function request(overrides: Partial<CalendarSyncRequest> = {}): CalendarSyncRequest {
  return calendarSyncRequestSchema.parse({
    reservationId: 'r-1',
    action: 'create',
    calendarId: CALENDAR_ID,
    version: 1,
    summary: 'Dinner for 4',
    start: { dateTime: '2030-05-01T20:00:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
    end: { dateTime: '2030-05-01T22:00:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
    ...overrides,
  });
}

describe('syncReservation (through googleapis against the fake Calendar)', () => {
  let fake: FakeCalendar;
  let calendar: CalendarClient;
  const sync = (req: CalendarSyncRequest) => syncReservation({ tenantId: TENANT, request: req }, { calendar });
  const storedEvents = () => fake.listEvents(CALENDAR_ID);

  beforeAll(async () => {
    fake = await startFakeCalendar();
    calendar = createCalendarClient({ rootUrl: fake.rootUrl, credential: { kind: 'access-token', token: 'test-token' }, tokenUrl: fake.tokenUrl, timeoutMs: 1000 });
  });
  afterEach(() => fake.reset());
  afterAll(() => fake.close());

  it('creates one event carrying the reservation, and a repeated create leaves it unchanged', async () => {
    const eventId = calendarEventId(TENANT, CALENDAR_ID, 'r-1');
    await expect(sync(request())).resolves.toEqual({ eventId, outcome: 'created', version: 1 });
    await expect(sync(request())).resolves.toEqual({ eventId, outcome: 'unchanged', version: 1 });

    expect(fake.insertCount()).toBe(1);
    expect(storedEvents()).toEqual([
      expect.objectContaining({
        id: eventId,
        status: 'confirmed',
        summary: 'Dinner for 4',
        extendedProperties: { private: { jobfleetTenant: TENANT, jobfleetReservation: 'r-1', jobfleetVersion: '1' } },
      }),
    ]);
  });

  it('updates the existing event when a create carries a changed summary', async () => {
    await sync(request());
    await expect(sync(request({ version: 2, summary: 'Dinner for 6' }))).resolves.toMatchObject({ outcome: 'updated', version: 2 });
    expect(fake.insertCount()).toBe(1);
    expect(storedEvents()).toEqual([expect.objectContaining({ summary: 'Dinner for 6' })]);
  });

  it('updates changed fields, clears removed ones, and reports a repeated update unchanged', async () => {
    await sync(request({ description: 'Window table', attendees: [{ email: 'ana@example.com' }] }));
    const update = request({ action: 'update', version: 2, location: 'Terrace' });
    await expect(sync(update)).resolves.toMatchObject({ outcome: 'updated' });
    await expect(sync(update)).resolves.toMatchObject({ outcome: 'unchanged' });
    expect(storedEvents()[0]).toMatchObject({ location: 'Terrace', description: '', attendees: [] });
  });

  it('patches only the changed fields when minimalPatch is on, every field we own when it is off, to the same event', async () => {
    const patches: unknown[] = [];
    const recording: CalendarClient = {
      ...calendar,
      patchEvent: (calendarId, eventId, patch) => {
        patches.push(patch);
        return calendar.patchEvent(calendarId, eventId, patch);
      },
    };
    await sync(request({ description: 'Window table' }));
    const bookkeeping = (version: number) => ({ private: { jobfleetTenant: TENANT, jobfleetReservation: 'r-1', jobfleetVersion: String(version) } });
    const minimal = request({ action: 'update', version: 2, description: 'Window table', location: 'Terrace' });
    await expect(syncReservation({ tenantId: TENANT, request: minimal }, { calendar: recording, minimalPatch: true })).resolves.toMatchObject({ outcome: 'updated' });
    expect(patches).toEqual([{ location: 'Terrace', extendedProperties: bookkeeping(2) }]);
    const full = request({ action: 'update', version: 3, description: 'Window table', location: 'Garden' });
    await expect(syncReservation({ tenantId: TENANT, request: full }, { calendar: recording })).resolves.toMatchObject({ outcome: 'updated' });
    expect(patches[1]).toMatchObject({ summary: 'Dinner for 4', description: 'Window table', location: 'Garden', attendees: [], extendedProperties: bookkeeping(3) });
    expect(storedEvents()).toEqual([expect.objectContaining({ summary: 'Dinner for 4', description: 'Window table', location: 'Garden', extendedProperties: bookkeeping(3) })]);
  });

  it('ignores a request older than the version the event carries', async () => {
    await sync(request({ version: 5, summary: 'Newest' }));
    await expect(sync(request({ action: 'update', version: 4, summary: 'Older' }))).resolves.toMatchObject({
      outcome: 'stale',
      version: 4,
    });
    await expect(sync(request({ version: 3, summary: 'Oldest' }))).resolves.toMatchObject({ outcome: 'stale' });
    await expect(sync(request({ action: 'cancel', version: 2 }))).resolves.toMatchObject({ outcome: 'stale' });
    expect(storedEvents()).toEqual([expect.objectContaining({ summary: 'Newest', status: 'confirmed' })]);
    expect(fake.requestCount('PATCH') + fake.requestCount('DELETE')).toBe(0);
  });

  it('records a newer version even when nothing else changed, so an older request cannot win later', async () => {
    await sync(request({ summary: 'A' }));
    await expect(sync(request({ action: 'update', version: 3, summary: 'A' }))).resolves.toMatchObject({ outcome: 'updated' });
    await expect(sync(request({ action: 'update', version: 2, summary: 'B' }))).resolves.toMatchObject({ outcome: 'stale' });
    expect(storedEvents()[0]).toMatchObject({ summary: 'A' });
  });

  it('fails an update of a reservation that has no event permanently', async () => {
    const error = await sync(request({ action: 'update', version: 2 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ code: 'CALENDAR_EVENT_NOT_FOUND', retryable: false });
    expect(fake.insertCount()).toBe(0);
  });

  it('fails an update of a cancelled reservation permanently instead of bringing it back', async () => {
    await sync(request());
    await sync(request({ action: 'cancel', version: 2 }));
    await expect(sync(request({ action: 'update', version: 3 }))).rejects.toMatchObject({ code: 'CALENDAR_EVENT_NOT_FOUND' });
    expect(storedEvents()[0]?.status).toBe('cancelled');
  });

  it('cancels once: a repeated cancel is already-cancelled', async () => {
    await sync(request());
    await expect(sync(request({ action: 'cancel', version: 2 }))).resolves.toMatchObject({ outcome: 'cancelled' });
    await expect(sync(request({ action: 'cancel', version: 2 }))).resolves.toMatchObject({ outcome: 'already-cancelled' });
    expect(fake.requestCount('DELETE')).toBe(1);
    expect(storedEvents()).toEqual([expect.objectContaining({ status: 'cancelled' })]);
  });

  it('reports a cancel of a reservation never synced as already-cancelled, writing nothing', async () => {
    await expect(sync(request({ action: 'cancel' }))).resolves.toMatchObject({ outcome: 'already-cancelled' });
    expect(storedEvents()).toEqual([]);
  });

  it('brings a cancelled event back on a newer create, without a second insert', async () => {
    await sync(request());
    await sync(request({ action: 'cancel', version: 2 }));
    await expect(sync(request({ version: 3, summary: 'Rebooked' }))).resolves.toMatchObject({ outcome: 'updated' });
    expect(fake.insertCount()).toBe(1);
    expect(storedEvents()).toEqual([
      expect.objectContaining({
        status: 'confirmed',
        summary: 'Rebooked',
        extendedProperties: { private: expect.objectContaining({ jobfleetVersion: '3' }) },
      }),
    ]);
  });

  it('keeps a cancelled event cancelled when a late retry of the older create arrives', async () => {
    await sync(request());
    await sync(request({ action: 'cancel', version: 2 }));
    await expect(sync(request())).resolves.toMatchObject({ outcome: 'stale' });
    expect(storedEvents()[0]?.status).toBe('cancelled');
  });

  it('creates exactly one event when the first attempt is rate limited and the retry succeeds', async () => {
    fake.failNext(1, { status: 429, retryAfterSeconds: 2 });
    await expect(sync(request())).rejects.toBeInstanceOf(RateLimitedError);
    await expect(sync(request())).resolves.toMatchObject({ outcome: 'created' });
    expect(fake.insertCount()).toBe(1);
  });

  it('reconciles an insert that Google applied but whose answer timed out, without a second event', async () => {
    fake.setLatency(1500);
    await expect(sync(request())).rejects.toBeInstanceOf(DependencyUnavailableError);
    fake.setLatency(0);
    await expect(sync(request())).resolves.toMatchObject({ outcome: 'unchanged' });
    expect(fake.insertCount()).toBe(1);
    expect(storedEvents()).toHaveLength(1);
  });
});

describe('calendarEventId', () => {
  it('is 64 lowercase hex characters, a valid base32hex Calendar id', () => {
    expect(calendarEventId(TENANT, CALENDAR_ID, 'r-1')).toMatch(/^[0-9a-f]{64}$/);
    expect(calendarEventId(TENANT, CALENDAR_ID, 'r-1')).toMatch(/^[a-v0-9]{5,1024}$/);
  });

  it('is stable for one reservation and distinct across tenants, calendars and reservations', () => {
    const id = calendarEventId('t', 'c', 'r');
    expect(calendarEventId('t', 'c', 'r')).toBe(id);
    const others = [calendarEventId('t2', 'c', 'r'), calendarEventId('t', 'c2', 'r'), calendarEventId('t', 'c', 'r2')];
    expect(new Set([id, ...others]).size).toBe(4);
    // No separator to forge: moving characters between fields changes the id.
    expect(calendarEventId('t:c', 'r', 'x')).not.toBe(calendarEventId('t', 'c:r', 'x'));
  });
});

describe('syncReservation comparing with what Google answers', () => {
  it('treats a time Google returns in another offset as the same instant', async () => {
    const stored: CalendarEvent = {
      id: calendarEventId(TENANT, CALENDAR_ID, 'r-1'),
      status: 'confirmed',
      summary: 'Dinner for 4',
      // Google answers in the calendar's zone; the request said 23:00Z = 20:00-03:00.
      start: { dateTime: '2030-05-01T20:00:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
      end: { dateTime: '2030-05-01T22:00:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
      attendees: [{ email: 'ana@example.com' }, { email: 'bo@example.com', displayName: 'Bo' }],
      extendedProperties: { private: { jobfleetTenant: TENANT, jobfleetReservation: 'r-1', jobfleetVersion: '1' } },
    };
    const patches: unknown[] = [];
    const calendar: CalendarClient = {
      insertEvent: async () => ({ kind: 'duplicate' }),
      getEvent: async () => stored,
      patchEvent: async (_calendarId, _eventId, patch) => {
        patches.push(patch);
        return stored;
      },
      deleteEvent: async () => 'deleted',
    };
    const sameReservation = request({
      start: { dateTime: '2030-05-01T23:00:00Z', timeZone: 'America/Argentina/Buenos_Aires' },
      end: { dateTime: '2030-05-02T01:00:00Z', timeZone: 'America/Argentina/Buenos_Aires' },
      attendees: [{ email: 'Bo@Example.com', displayName: 'Bo' }, { email: 'ana@example.com' }],
    });
    await expect(syncReservation({ tenantId: TENANT, request: sameReservation }, { calendar })).resolves.toMatchObject({
      outcome: 'unchanged',
    });
    expect(patches).toEqual([]);
  });
});
