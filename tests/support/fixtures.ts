/** A valid calendar-sync create request; override any field to make a variant. */
export function reservationRequest(reservationId: string, version = 1, overrides: Record<string, unknown> = {}) {
  return {
    reservationId,
    action: 'create',
    calendarId: 'primary',
    version,
    summary: `Reservation ${reservationId}`,
    start: { dateTime: '2026-12-01T20:00:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
    end: { dateTime: '2026-12-01T22:00:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
    ...overrides,
  };
}
