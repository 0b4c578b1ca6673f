import { createHash } from 'node:crypto';
import {
  DependencyUnavailableError,
  PermanentError,
  type CalendarSyncRequest,
  type CalendarSyncResult,
} from '@jobfleet/contracts';
import type { CalendarAttendee, CalendarClient, CalendarEvent, CalendarEventInput, CalendarEventTime } from './client';
import { CALENDAR_DEPENDENCY } from './errors';
import { assertNever } from './exhaustive';

type SyncOutcome = CalendarSyncResult['outcome'];

export interface SyncReservationJob {
  tenantId: string;
  request: CalendarSyncRequest;
}

export interface SyncReservationDeps {
  calendar: CalendarClient;
  /**
   * Rolling out (flag `calendar-sync.minimal-patch`): an update patches only the fields that differ
   * from the stored event instead of every field we own, so a request names only what changed and
   * fields that already match are not written again. Default false: the full patch.
   */
  minimalPatch?: boolean;
}

/** Where one reservation's event lives, and which version of the reservation is being applied. */
interface Target {
  calendar: CalendarClient;
  calendarId: string;
  eventId: string;
  version: number;
  minimalPatch: boolean;
}

/**
 * The id of the one event that mirrors a reservation: lowercase hex sha256 (a subset of the
 * base32hex ids Google accepts), so every create, update, cancel and re-run addresses it.
 */
export function calendarEventId(tenantId: string, calendarId: string, reservationId: string): string {
  // A JSON array is an unambiguous encoding: no value can fake a separator.
  return createHash('sha256').update(JSON.stringify([tenantId, calendarId, reservationId])).digest('hex');
}

/**
 * Brings the reservation's event to the state the request describes. Safe to run any number of
 * times and in any order: the version stored on the event keeps an older request from
 * overwriting a newer one.
 */
export async function syncReservation(job: SyncReservationJob, deps: SyncReservationDeps): Promise<CalendarSyncResult> {
  const { tenantId, request } = job;
  const target: Target = {
    calendar: deps.calendar,
    calendarId: request.calendarId,
    eventId: calendarEventId(tenantId, request.calendarId, request.reservationId),
    version: request.version,
    minimalPatch: deps.minimalPatch ?? false,
  };
  const outcome = await apply(target, tenantId, request);
  return { eventId: target.eventId, outcome, version: request.version };
}

function apply(target: Target, tenantId: string, request: CalendarSyncRequest): Promise<SyncOutcome> {
  switch (request.action) {
    case 'create':
      return create(target, desiredEvent(tenantId, request));
    case 'update':
      return update(target, desiredEvent(tenantId, request), request.reservationId);
    case 'cancel':
      return cancel(target, bookkeeping(tenantId, request));
    default:
      return assertNever(request.action);
  }
}

async function create(target: Target, desired: CalendarEventInput): Promise<SyncOutcome> {
  const { calendar, calendarId, eventId } = target;
  const inserted = await calendar.insertEvent(calendarId, { ...desired, id: eventId });
  if (inserted.kind === 'created') return 'created';
  // An earlier attempt or job created it (perhaps deleted since): reconcile instead of failing.
  const stored = await calendar.getEvent(calendarId, eventId);
  if (stored === null) {
    const message = `insert of ${eventId} reported a duplicate id, but get found no event`;
    throw new DependencyUnavailableError(CALENDAR_DEPENDENCY, message, {
      details: { status: 404, reason: 'duplicateNotFound', operation: 'get' },
    });
  }
  if (isNewer(stored, target.version)) return 'stale';
  if (stored.status !== 'cancelled' && sameContent(stored, desired)) return 'unchanged';
  await calendar.patchEvent(calendarId, eventId, { ...desired, status: 'confirmed' });
  return 'updated';
}

async function update(target: Target, desired: CalendarEventInput, reservationId: string): Promise<SyncOutcome> {
  const { calendar, calendarId, eventId } = target;
  const stored = await calendar.getEvent(calendarId, eventId);
  if (stored !== null && isNewer(stored, target.version)) return 'stale';
  if (stored === null || stored.status === 'cancelled') {
    const message = `reservation ${reservationId} has no event to update in calendar ${calendarId}`;
    throw new PermanentError('CALENDAR_EVENT_NOT_FOUND', message, {
      details: { calendarId, eventId, reservationId, deleted: stored !== null },
    });
  }
  const changed = changedFields(stored, desired);
  if (Object.keys(changed).length === 0) return 'unchanged';
  await calendar.patchEvent(calendarId, eventId, target.minimalPatch ? changed : desired);
  return 'updated';
}

async function cancel(target: Target, properties: Record<string, string>): Promise<SyncOutcome> {
  const { calendar, calendarId, eventId } = target;
  const stored = await calendar.getEvent(calendarId, eventId);
  if (stored === null) return 'already-cancelled';
  if (isNewer(stored, target.version)) return 'stale';
  // A deletion cannot carry data: record the cancel's version first, so a late retry of an older
  // create finds it stale instead of bringing the event back.
  if (storedVersion(stored) !== target.version) {
    await calendar.patchEvent(calendarId, eventId, { extendedProperties: { private: properties } });
  }
  if (stored.status === 'cancelled') return 'already-cancelled';
  return (await calendar.deleteEvent(calendarId, eventId)) === 'deleted' ? 'cancelled' : 'already-cancelled';
}

/** The private properties that tie an event to its reservation and the version it reflects. */
function bookkeeping(tenantId: string, request: CalendarSyncRequest): Record<string, string> {
  return {
    jobfleetTenant: tenantId,
    jobfleetReservation: request.reservationId,
    jobfleetVersion: String(request.version),
  };
}

/** Every field we own, absent ones as empty values: a patch leaves out fields unchanged, so clearing must be explicit. */
function desiredEvent(tenantId: string, request: CalendarSyncRequest): CalendarEventInput {
  return {
    summary: request.summary,
    description: request.description ?? '',
    location: request.location ?? '',
    start: request.start,
    end: request.end,
    attendees: request.attendees ?? [],
    extendedProperties: { private: bookkeeping(tenantId, request) },
  };
}

function storedVersion(event: CalendarEvent): number | undefined {
  const version = Number(event.extendedProperties?.private?.jobfleetVersion);
  return Number.isSafeInteger(version) ? version : undefined;
}

function isNewer(event: CalendarEvent, version: number): boolean {
  return (storedVersion(event) ?? -1) > version;
}

function sameContent(stored: CalendarEvent, desired: CalendarEventInput): boolean {
  return Object.keys(changedFields(stored, desired)).length === 0;
}

/** The fields of `desired` that the stored event does not have yet. */
function changedFields(stored: CalendarEvent, desired: CalendarEventInput): Partial<CalendarEventInput> {
  const storedPrivate = stored.extendedProperties?.private ?? {};
  const changed: Partial<CalendarEventInput> = {};
  if (stored.summary !== desired.summary) changed.summary = desired.summary;
  // Google drops empty strings from what it returns.
  if ((stored.description ?? '') !== (desired.description ?? '')) changed.description = desired.description;
  if ((stored.location ?? '') !== (desired.location ?? '')) changed.location = desired.location;
  if (!sameTime(stored.start, desired.start)) changed.start = desired.start;
  if (!sameTime(stored.end, desired.end)) changed.end = desired.end;
  if (attendeeKey(stored.attendees) !== attendeeKey(desired.attendees)) changed.attendees = desired.attendees;
  if (!Object.entries(desired.extendedProperties?.private ?? {}).every(([key, value]) => storedPrivate[key] === value)) {
    changed.extendedProperties = desired.extendedProperties;
  }
  return changed;
}

// Google answers dateTime in the calendar's offset (10:00Z comes back as 07:00-03:00): compare instants.
function sameTime(stored: CalendarEventTime | undefined, desired: CalendarEventTime | undefined): boolean {
  return stored?.timeZone === desired?.timeZone && instant(stored?.dateTime) === instant(desired?.dateTime);
}

function instant(dateTime: string | undefined): number | undefined {
  return dateTime === undefined ? undefined : Date.parse(dateTime);
}

/** Order- and case-insensitive: Google may reorder attendees and lowercase their addresses. */
function attendeeKey(attendees: CalendarAttendee[] | undefined): string {
  return (attendees ?? [])
    .map((attendee) => JSON.stringify([attendee.email.toLowerCase(), attendee.displayName ?? '']))
    .sort()
    .join('\n');
}
