import type { Common, calendar_v3 } from 'googleapis';
import { z } from 'zod';
import { DependencyUnavailableError } from '@jobfleet/contracts';
import { createAuthClient, type CalendarCredential } from './auth';
import { CALENDAR_DEPENDENCY, describeFailure, toCalendarError, type CalendarFailure, type CalendarOperation } from './errors';

export interface CalendarEventTime {
  /** RFC 3339 with an offset; Google answers it in the calendar's own offset. */
  dateTime?: string;
  /** IANA zone name. */
  timeZone?: string;
}

export interface CalendarAttendee {
  email: string;
  displayName?: string;
}

/** The event fields jobfleet writes. */
export interface CalendarEventInput {
  summary?: string;
  description?: string;
  location?: string;
  start?: CalendarEventTime;
  end?: CalendarEventTime;
  attendees?: CalendarAttendee[];
  /** Only visible to this calendar's copy of the event: where we keep our bookkeeping. */
  extendedProperties?: { private?: Record<string, string> };
}

/** An event as Google stores it (the fields jobfleet reads). */
export interface CalendarEvent extends CalendarEventInput {
  id: string;
  /** `cancelled` means deleted: `get` keeps returning deleted events for a while. */
  status: 'confirmed' | 'tentative' | 'cancelled';
  etag?: string;
}

export interface CalendarClient {
  /** `duplicate`: an event with this id exists already, deleted ones included. */
  insertEvent(
    calendarId: string,
    event: CalendarEventInput & { id: string },
  ): Promise<{ kind: 'created'; event: CalendarEvent } | { kind: 'duplicate' }>;
  /** null when Google does not know the event (404, or 410 once it is purged). */
  getEvent(calendarId: string, eventId: string): Promise<CalendarEvent | null>;
  /** Patch semantics: fields left out keep their value. `status: 'confirmed'` restores a deleted event. */
  patchEvent(
    calendarId: string,
    eventId: string,
    patch: Partial<CalendarEventInput> & { status?: 'confirmed' },
  ): Promise<CalendarEvent>;
  /** `gone`: it was deleted already (410) or never existed (404). */
  deleteEvent(calendarId: string, eventId: string): Promise<'deleted' | 'gone'>;
}

export interface CalendarClientOptions {
  /** Calendar API root: `https://www.googleapis.com/` in production, a fake's `rootUrl` in tests. */
  rootUrl: string;
  /** The tenant's credential: every request of this client acts as it. */
  credential: CalendarCredential;
  /** Where service-account and refresh-token credentials are exchanged for access tokens. */
  tokenUrl: string;
  /** Upper bound for each HTTP request, the OAuth token exchange included. */
  timeoutMs: number;
}

const eventTimeSchema = z.object({ dateTime: z.string().optional(), timeZone: z.string().optional() });

// Not strict: Google adds many fields we do not read (htmlLink, creator, organizer, sequence...).
const calendarEventSchema: z.ZodType<CalendarEvent> = z.object({
  id: z.string().min(1),
  // Optional in the resource; confirmed is Google's default.
  status: z.enum(['confirmed', 'tentative', 'cancelled']).default('confirmed'),
  summary: z.string().optional(),
  description: z.string().optional(),
  location: z.string().optional(),
  start: eventTimeSchema.optional(),
  end: eventTimeSchema.optional(),
  attendees: z.array(z.object({ email: z.string(), displayName: z.string().optional() })).optional(),
  extendedProperties: z.object({ private: z.record(z.string(), z.string()).optional() }).optional(),
  etag: z.string().optional(),
});

/** The part of a googleapis response we read: its body is checked by `parseEvent`. */
type ApiResponse = { data: unknown };

type HttpFailure = Extract<CalendarFailure, { kind: 'http' }>;

const isGone = (failure: HttpFailure) => failure.status === 404 || failure.status === 410;

const isDuplicateId = (failure: HttpFailure) => failure.status === 409 && failure.reason === 'duplicate';

/**
 * Loads googleapis now. Its import blocks the event loop for seconds, so a process that will call
 * Calendar does it at boot rather than in the middle of its first job (or of a request it serves).
 */
export async function preloadCalendarLibrary(): Promise<void> {
  await import('googleapis');
}

/** The official googleapis client for one tenant's credential, with its retries off: BullMQ decides when to try again. */
export function createCalendarClient(options: CalendarClientOptions): CalendarClient {
  // googleapis takes seconds to import: loaded on the first call, so processes that never call
  // Calendar (afip or backup workers, the API) do not pay for it at boot.
  let loading: Promise<{ calendar: calendar_v3.Calendar; gaxiosError: typeof Common.GaxiosError }> | undefined;
  const load = () =>
    (loading ??= import('googleapis').then(({ google, Common: common }) => ({
      calendar: google.calendar({
        version: 'v3',
        rootUrl: options.rootUrl,
        auth: createAuthClient(google, options.credential, options.tokenUrl, options.timeoutMs),
        retry: false,
        timeout: options.timeoutMs,
      }),
      gaxiosError: common.GaxiosError,
    })));

  const tokenUrl = options.credential.kind === 'access-token' ? undefined : options.tokenUrl;

  return {
    async insertEvent(calendarId, event) {
      const response = await send('insert', (calendar) => calendar.events.insert({ calendarId, requestBody: event }), isDuplicateId);
      return response ? { kind: 'created', event: parseEvent(response.data, 'insert') } : { kind: 'duplicate' };
    },
    async getEvent(calendarId, eventId) {
      const response = await send('get', (calendar) => calendar.events.get({ calendarId, eventId }), isGone);
      return response ? parseEvent(response.data, 'get') : null;
    },
    async patchEvent(calendarId, eventId, patch) {
      const response = await send('patch', (calendar) => calendar.events.patch({ calendarId, eventId, requestBody: patch }));
      return parseEvent(response.data, 'patch');
    },
    async deleteEvent(calendarId, eventId) {
      const response = await send('delete', (calendar) => calendar.events.delete({ calendarId, eventId }), isGone);
      return response ? 'deleted' : 'gone';
    },
  };

  /**
   * Runs one request. A Calendar failure `isAnswer` accepts is an answer of the API (a duplicate
   * id, a gone event) and comes back as null; every other failure is thrown as one of our errors.
   */
  type Request = (calendar: calendar_v3.Calendar) => Promise<ApiResponse>;
  async function send(operation: CalendarOperation, request: Request): Promise<ApiResponse>;
  async function send(operation: CalendarOperation, request: Request, isAnswer: (failure: HttpFailure) => boolean): Promise<ApiResponse | null>;
  async function send(operation: CalendarOperation, request: Request, isAnswer?: (failure: HttpFailure) => boolean): Promise<ApiResponse | null> {
    const { calendar, gaxiosError } = await load();
    try {
      return await request(calendar);
    } catch (thrown) {
      const failure = describeFailure(thrown, tokenUrl, gaxiosError);
      if (failure.kind === 'http' && !failure.tokenExchange && isAnswer?.(failure)) return null;
      throw toCalendarError(failure, operation, thrown);
    }
  }
}

function parseEvent(data: unknown, operation: CalendarOperation): CalendarEvent {
  const parsed = calendarEventSchema.safeParse(data);
  if (parsed.success) return parsed.data;
  // A 2xx that is not an event is a proxy or an outage page, not a verdict on our request.
  throw new DependencyUnavailableError(CALENDAR_DEPENDENCY, `${operation} answered something that is not an event`, {
    cause: parsed.error,
    details: { status: undefined, reason: 'unexpectedResponse', operation },
  });
}
