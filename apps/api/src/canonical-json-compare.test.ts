import canonicalize from 'canonicalize';
import { canonicalJson } from './canonical-json';

// Before canonicalJson is replaced by `canonicalize` (RFC 8785): where do they differ? The old
// function rebuilds each object with sorted keys and lets JSON.stringify write it, but a JS object
// lists integer-like keys ("9", "10") first in numeric order, so those come out unsorted.

describe('canonicalJson (API) against canonicalize (RFC 8785)', () => {
  it('differs on integer-like keys: JS property order puts them first, numerically', () => {
    const value = { b: 1, '10': 2, '9': 3 };
    expect(canonicalJson(value)).toBe('{"9":3,"10":2,"b":1}');
    expect(canonicalize(value)).toBe('{"10":2,"9":3,"b":1}');
  });

  it('gives identical bytes for bodies of every queue and for the stored responses', () => {
    const bodies: unknown[] = [
      {
        reservationId: 'res-1', action: 'create', calendarId: 'primary', version: 3, summary: 'Mesa "8" — 20:30 😀',
        description: 'línea 1\nlínea 2\t\\', start: { dateTime: '2026-05-01T20:30:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
        end: { dateTime: '2026-05-01T22:30:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
        attendees: [{ email: 'ana@example.com', displayName: 'Ana' }, { email: 'bo@example.com' }],
      },
      {
        invoiceId: 'inv-1', cuit: 20123456786, ptoVta: 1, cbteTipo: 6, concept: 2, docType: 96, docNumber: 30111222, date: '2026-03-14',
        serviceFrom: '2026-03-01', serviceTo: '2026-03-31', paymentDue: '2026-04-10',
        amounts: { total: 1234.56, untaxed: 0, net: 1020.3, exempt: 0, vat: 214.26, otherTaxes: 0 },
        vat: [{ rateId: 5, base: 1020.3, amount: 214.26 }], currency: 'DOL', exchangeRate: 1050.25,
      },
      { definition: 'main-db', action: 'verify', restoreCheck: 'full' },
      {
        jobId: 'acme-8c915c2d', queue: 'calendar-sync', status: 'queued', idempotencyKey: 'reservation:res-1:v3',
        links: { self: '/v1/jobs/acme-8c915c2d', sync: '/v1/reservations/res-1/sync' },
      },
    ];
    for (const body of bodies) expect(canonicalize(body)).toBe(canonicalJson(body));
  });
});
