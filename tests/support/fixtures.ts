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

/** A valid class A invoice (21% VAT on 1000.00) for the seller CUIT 30712345671, dated today (AFIP accepts ±5 days). */
export function invoiceRequest(invoiceId: string, overrides: Record<string, unknown> = {}) {
  return {
    invoiceId,
    cuit: 30712345671,
    ptoVta: 1,
    cbteTipo: 1,
    concept: 1,
    docType: 80,
    docNumber: 20123456786,
    date: new Date().toISOString().slice(0, 10),
    amounts: { total: 1210, net: 1000, vat: 210 },
    vat: [{ rateId: 5, base: 1000, amount: 210 }],
    ...overrides,
  };
}
