import { reservationRequest } from '../../../tests/support/fixtures';
import { backup } from './backup/index';
import { calendarSync } from './calendar-sync/index';
import { jobIdentityOf } from './job-history';

describe('jobIdentityOf', () => {
  it('names a scheduled backup by its definition, with no tenant nor key, created at its BullMQ timestamp', () => {
    const job = { id: 'repeat:backup.nightly:1764547200000', data: { request: { definition: 'nightly' } }, timestamp: 1_764_547_200_000 };
    expect(jobIdentityOf(backup, job)).toEqual({
      kind: 'backup',
      id: job.id,
      tenantId: null,
      businessKey: 'nightly',
      idempotencyKey: null,
      createdAt: new Date(1_764_547_200_000),
    });
  });

  it('names an API job by its entity and takes its enqueue time from its data, as the acceptor recorded it', () => {
    const enqueuedAt = '2026-12-01T10:00:00.123Z';
    const data = { tenantId: 't1', idempotencyKey: 'k1', enqueuedAt, request: reservationRequest('r1') };
    expect(jobIdentityOf(calendarSync, { id: 'j1', data, timestamp: 1 })).toMatchObject({ tenantId: 't1', businessKey: 'r1', idempotencyKey: 'k1', createdAt: new Date(enqueuedAt) });
  });

  it('gives a job whose payload does not parse a row without what it cannot tell', () => {
    const enqueuedAt = '2026-12-01T10:00:00.123Z';
    const data = { tenantId: 't1', idempotencyKey: 'k1', enqueuedAt, request: { reservationId: 'r1' } };
    expect(jobIdentityOf(calendarSync, { id: 'j1', data, timestamp: 1 })).toEqual({
      kind: 'calendar-sync',
      id: 'j1',
      tenantId: 't1',
      // The request is incomplete: no business key can be told.
      businessKey: null,
      idempotencyKey: 'k1',
      createdAt: new Date(enqueuedAt),
    });
  });
});
