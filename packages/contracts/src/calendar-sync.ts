import { z } from 'zod';

/** Google Calendar accepts RFC 3339 date-times; we require an explicit offset or Z. */
const dateTime = z.iso.datetime({ offset: true });
// Building an Intl.DateTimeFormat is the costliest step of validating a reservation, so each zone
// name is tried once per process. Only accepted names are kept, and at most this many: Intl takes
// any letter case, so the spellings of valid names are not a small set.
const KNOWN_TIME_ZONES_MAX = 2000;
const knownTimeZones = new Set<string>();

function isKnownTimeZone(tz: string): boolean {
  if (knownTimeZones.has(tz)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    return false;
  }
  if (knownTimeZones.size < KNOWN_TIME_ZONES_MAX) knownTimeZones.add(tz);
  return true;
}

// IANA zone names; validated again by Intl so typos fail at the edge, not at Google.
const timeZone = z
  .string()
  .min(1)
  .max(64)
  .refine(isKnownTimeZone, 'unknown IANA time zone');

const eventTime = z.strictObject({ dateTime, timeZone });

export const calendarSyncActions = ['create', 'update', 'cancel'] as const;

/** What a producer POSTs to /v1/jobs/calendar-sync. */
export const calendarSyncRequestSchema = z
  .strictObject({
    reservationId: z.string().min(1).max(200).regex(/^[\w.:-]+$/, 'letters, digits, _ . : - only'),
    action: z.enum(calendarSyncActions),
    calendarId: z.string().min(1).max(320),
    // Monotonic per reservation: an older version never overwrites a newer one.
    version: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    summary: z.string().min(1).max(1024).optional(),
    description: z.string().max(8192).optional(),
    location: z.string().max(1024).optional(),
    start: eventTime.optional(),
    end: eventTime.optional(),
    attendees: z
      .array(z.strictObject({ email: z.email(), displayName: z.string().max(256).optional() }))
      .max(100)
      .optional(),
  })
  .superRefine((req, ctx) => {
    if (req.action === 'cancel') return;
    for (const field of ['summary', 'start', 'end'] as const) {
      if (req[field] === undefined) {
        ctx.addIssue({ code: 'custom', path: [field], message: `required when action is ${req.action}` });
      }
    }
    if (req.start && req.end && Date.parse(req.end.dateTime) <= Date.parse(req.start.dateTime)) {
      ctx.addIssue({ code: 'custom', path: ['end', 'dateTime'], message: 'must be after start.dateTime' });
    }
  });
export type CalendarSyncRequest = z.infer<typeof calendarSyncRequestSchema>;

export interface CalendarSyncResult {
  eventId: string;
  outcome: 'created' | 'updated' | 'unchanged' | 'cancelled' | 'already-cancelled' | 'stale';
  version: number;
}
