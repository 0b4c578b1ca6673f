import { loadConfig } from '@jobfleet/config';
import { jobRepository, recordAcceptedJobs } from '@jobfleet/db';
import { createMetrics } from '@jobfleet/observability';
import { captureLogs } from '@jobfleet/observability/testing';
import { createDependencyGuard } from '@jobfleet/resilience';
import type { Job } from 'bullmq';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { reservationRequest } from '../../../tests/support/fixtures';
import { backup } from './backup/index';
import { calendarSync } from './calendar-sync/index';
import { attemptHistory, jobIdentityOf, START_WRITE_DELAY_MS } from './job-history';
import { syncEntityOf } from './sync-tracking';

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

  it('takes the business key of a job whose processor named its sync entity, without parsing the request again', () => {
    const data = { tenantId: 't1', idempotencyKey: 'k1', request: reservationRequest('r1') as unknown };
    const job = { id: 'j1', timestamp: 1, data } as unknown as Job;
    const entity = syncEntityOf(calendarSync, 't1', calendarSync.requestSchema.parse(data.request), job);
    // Were the request parsed again, this one would give no business key.
    data.request = { reservationId: 'r1' };
    expect(jobIdentityOf(calendarSync, job)).toMatchObject({ businessKey: entity.entityId });
    expect(jobIdentityOf(calendarSync, { id: 'j1', timestamp: 1, data: { ...data } })).toMatchObject({ businessKey: null });
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

describe('attemptHistory', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['t1'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  const history = () =>
    attemptHistory(
      { database: testDb.database, postgres: createDependencyGuard('postgres', loadConfig({}).resilience.postgres, { metrics: createMetrics(), logger: captureLogs().logger }) },
      calendarSync,
      'w1',
    );
  const enqueuedAt = new Date();
  const jobOf = (id: string) => ({ id, timestamp: 1, data: { tenantId: 't1', idempotencyKey: id, enqueuedAt: enqueuedAt.toISOString(), request: reservationRequest(id) } }) as unknown as Job;
  const accept = (id: string) => recordAcceptedJobs(testDb.database.db, [{ ...jobIdentityOf(calendarSync, jobOf(id)) }]);
  const row = (id: string) => jobRepository.get(testDb.database.db, 'calendar-sync', id);
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('writes a run that ends within START_WRITE_DELAY_MS once, by its end, which carries its start', async () => {
    const recorder = history();
    await accept('short');
    const startedAt = new Date(Date.now() - 5);
    const start = recorder.record(jobOf('short'), { run: 1, attempt: 1, startedAt });
    await sleep(START_WRITE_DELAY_MS / 4);
    expect((await row('short'))?.state).toBe('waiting');
    await recorder.record(jobOf('short'), { run: 1, attempt: 1, startedAt, ended: { at: new Date(), outcome: 'completed', error: undefined } });
    await start;
    expect(await row('short')).toMatchObject({ state: 'completed', attempts: 1, businessKey: 'short' });
    expect(await jobRepository.attempts(testDb.database.db, 'calendar-sync', 'short')).toEqual([
      expect.objectContaining({ run: 1, outcome: 'completed', startedAt, workerId: 'w1' }),
    ]);
  });

  it('writes the start of a run still going after START_WRITE_DELAY_MS: the job shows active', async () => {
    await accept('long');
    await history().record(jobOf('long'), { run: 1, attempt: 1, startedAt: new Date() });
    expect(await row('long')).toMatchObject({ state: 'active', attempts: 1 });
    expect(await jobRepository.attempts(testDb.database.db, 'calendar-sync', 'long')).toEqual([expect.objectContaining({ run: 1, outcome: null, finishedAt: null })]);
  });
});
