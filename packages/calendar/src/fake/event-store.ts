import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { googleError, type Reply } from './replies';

const eventTimeSchema = z.object({
  date: z.string().optional(),
  dateTime: z.string().optional(),
  timeZone: z.string().optional(),
});

/** The fields a client may write. Unknown fields are dropped, as the fake does not model them. */
const writableFieldsSchema = z.object({
  status: z.enum(['confirmed', 'tentative', 'cancelled']).optional(),
  summary: z.string().optional(),
  description: z.string().optional(),
  location: z.string().optional(),
  start: eventTimeSchema.optional(),
  end: eventTimeSchema.optional(),
  attendees: z.array(z.object({ email: z.string(), displayName: z.string().optional() })).optional(),
  extendedProperties: z
    .object({
      private: z.record(z.string(), z.string()).optional(),
      shared: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
});
type WritableFields = z.infer<typeof writableFieldsSchema>;

const insertBodySchema = writableFieldsSchema.extend({ id: z.string().optional() });

/** An event as the fake stores and serves it: Google's resource, limited to the fields modelled. */
export interface FakeCalendarEvent extends Omit<WritableFields, 'status'> {
  kind: 'calendar#event';
  etag: string;
  id: string;
  status: 'confirmed' | 'tentative' | 'cancelled';
  htmlLink: string;
  created: string;
  updated: string;
  iCalUID: string;
  /** The calendar the event was created in. */
  organizer: { email: string; self: true };
}

interface EventRequest {
  method: string;
  calendarId: string;
  /** Absent for the collection (`.../events`). */
  eventId: string | undefined;
  /** Parsed JSON, undefined when the request had no body. */
  body: unknown;
}

// Client-chosen ids: base32hex characters (RFC 2938 §3.1.2), 5 to 1024 of them (Event.id reference).
const EVENT_ID = /^[a-v0-9]{5,1024}$/;

/** In-memory Calendar v3 event semantics, answered in Google's wire format. */
export class FakeEventStore {
  readonly #calendars = new Map<string, Map<string, FakeCalendarEvent>>();
  readonly #inserts = new Map<string, number>();
  #etagSequence = 0;

  handle(request: EventRequest): Reply {
    const { method, calendarId, eventId, body } = request;
    if (eventId === undefined) {
      if (method === 'POST') return this.#insert(calendarId, body);
    } else {
      switch (method) {
        case 'GET':
          return this.#get(calendarId, eventId);
        case 'PATCH':
          return this.#patch(calendarId, eventId, body);
        case 'PUT':
          return this.#update(calendarId, eventId, body);
        case 'DELETE':
          return this.#delete(calendarId, eventId);
      }
    }
    return googleError(501, 'notImplemented', `The fake Calendar does not implement ${method} on this path.`);
  }

  /** Every stored event, deleted ones included, optionally of one calendar. Copies. */
  list(calendarId?: string): FakeCalendarEvent[] {
    const calendars = calendarId === undefined ? [...this.#calendars.values()] : [this.#calendars.get(calendarId) ?? new Map<string, FakeCalendarEvent>()];
    return calendars.flatMap((events) => [...events.values()]).map((event) => structuredClone(event));
  }

  /** Successful inserts, of one event id or of all. */
  insertCount(eventId?: string): number {
    if (eventId !== undefined) return this.#inserts.get(eventId) ?? 0;
    return [...this.#inserts.values()].reduce((sum, count) => sum + count, 0);
  }

  clear(): void {
    this.#calendars.clear();
    this.#inserts.clear();
  }

  #insert(calendarId: string, body: unknown): Reply {
    const parsed = insertBodySchema.safeParse(body);
    if (!parsed.success) return invalidBody(parsed.error);
    const { id = generateEventId(), ...fields } = parsed.data;
    if (!EVENT_ID.test(id)) return googleError(400, 'invalid', 'Invalid resource id value.');
    const missingTime = missingTimeReply(fields);
    if (missingTime) return missingTime;
    const events = this.#calendar(calendarId);
    // Deleted events keep their id: inserting it again is still a duplicate.
    if (events.has(id)) return googleError(409, 'duplicate', 'The requested identifier already exists.');
    const now = new Date().toISOString();
    const event: FakeCalendarEvent = {
      kind: 'calendar#event',
      etag: this.#nextEtag(),
      id,
      htmlLink: `https://www.google.com/calendar/event?eid=${Buffer.from(`${id} ${calendarId}`).toString('base64url')}`,
      created: now,
      updated: now,
      iCalUID: `${id}@google.com`,
      organizer: { email: calendarId, self: true },
      ...fields,
      status: fields.status ?? 'confirmed',
    };
    events.set(id, event);
    this.#inserts.set(id, (this.#inserts.get(id) ?? 0) + 1);
    return { status: 200, body: event };
  }

  // Deleted events are still returned, with status "cancelled" ("The get method always returns them").
  #get(calendarId: string, eventId: string): Reply {
    const event = this.#calendars.get(calendarId)?.get(eventId);
    return event ? { status: 200, body: event } : notFound();
  }

  /** Patch semantics: objects merge, arrays and scalars replace; `status: "confirmed"` restores a deleted event. */
  #patch(calendarId: string, eventId: string, body: unknown): Reply {
    const event = this.#calendars.get(calendarId)?.get(eventId);
    if (!event) return notFound();
    const parsed = writableFieldsSchema.safeParse(body);
    if (!parsed.success) return invalidBody(parsed.error);
    return this.#write(calendarId, mergeObjects(event, parsed.data));
  }

  /** Update semantics: the writable fields are replaced as a whole. */
  #update(calendarId: string, eventId: string, body: unknown): Reply {
    const event = this.#calendars.get(calendarId)?.get(eventId);
    if (!event) return notFound();
    const parsed = writableFieldsSchema.safeParse(body);
    if (!parsed.success) return invalidBody(parsed.error);
    const missingTime = missingTimeReply(parsed.data);
    if (missingTime) return missingTime;
    const { kind, etag, id, htmlLink, created, updated, iCalUID, organizer } = event;
    const systemFields = { kind, etag, id, htmlLink, created, updated, iCalUID, organizer };
    return this.#write(calendarId, { ...systemFields, ...parsed.data, status: parsed.data.status ?? 'confirmed' });
  }

  /** Deleting marks the event cancelled and keeps it; deleting it again is 410. */
  #delete(calendarId: string, eventId: string): Reply {
    const event = this.#calendars.get(calendarId)?.get(eventId);
    if (!event) return notFound();
    if (event.status === 'cancelled') return googleError(410, 'deleted', 'Resource has been deleted');
    this.#write(calendarId, { ...event, status: 'cancelled' });
    return { status: 204 };
  }

  #write(calendarId: string, event: FakeCalendarEvent): Reply {
    const written = { ...event, etag: this.#nextEtag(), updated: new Date().toISOString() };
    this.#calendar(calendarId).set(event.id, written);
    return { status: 200, body: written };
  }

  #calendar(calendarId: string): Map<string, FakeCalendarEvent> {
    let events = this.#calendars.get(calendarId);
    if (!events) {
      events = new Map();
      this.#calendars.set(calendarId, events);
    }
    return events;
  }

  // Google's etags are quoted numbers that change on every write.
  #nextEtag(): string {
    this.#etagSequence += 1;
    return `"${Date.now()}${String(this.#etagSequence).padStart(6, '0')}"`;
  }
}

function notFound(): Reply {
  return googleError(404, 'notFound', 'Not Found');
}

function invalidBody(error: z.ZodError): Reply {
  const path = error.issues[0]?.path.join('.') ?? '';
  return googleError(400, 'invalid', `Invalid value for: ${path || 'request body'}`);
}

function missingTimeReply(fields: WritableFields): Reply | undefined {
  if (!fields.start) return googleError(400, 'required', 'Missing start time.');
  if (!fields.end) return googleError(400, 'required', 'Missing end time.');
  return undefined;
}

/** 26 base32hex characters, like the ids Google generates; BigInt's radix 32 digits are base32hex. */
function generateEventId(): string {
  return BigInt(`0x${randomBytes(16).toString('hex')}`).toString(32).padStart(26, '0');
}

/** JSON merge of `patch` into `target`: nested objects merge, everything else replaces. */
function mergeObjects<T extends object>(target: T, patch: object): T {
  const merged: Record<string, unknown> = Object.fromEntries(Object.entries(target));
  for (const [key, value] of Object.entries(patch)) {
    const current = merged[key];
    merged[key] = isPlainObject(current) && isPlainObject(value) ? mergeObjects(current, value) : value;
  }
  return merged as T;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
