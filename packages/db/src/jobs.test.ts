import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { adminAuditRepository } from './admin-audit';
import { jobRepository, recordAcceptedJobs, recordAttempt, type JobIdentity } from './jobs';

describe('jobs and job_attempts writes', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['t1'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  const identity = (id: string, createdAt: Date, businessKey = `res-${id}`): JobIdentity => ({
    kind: 'calendar-sync',
    id,
    tenantId: 't1',
    businessKey,
    idempotencyKey: `key-${id}`,
    createdAt,
  });
  const get = (id: string) => jobRepository.get(testDb.database.db, 'calendar-sync', id);
  const run = (job: JobIdentity, runNumber: number, ended?: Parameters<typeof recordAttempt>[1]['ended']) =>
    recordAttempt(testDb.database.db, { job, run: runNumber, attempt: runNumber, workerId: 'w1', startedAt: new Date(), ...(ended ? { ended } : {}) });

  it('leaves the row of a job a worker already started alone when the acceptor writes late', async () => {
    const job = identity('late-accept', new Date('2026-01-01T00:00:00.123Z'));
    await run(job, 1);
    await recordAcceptedJobs(testDb.database.db, [job]);
    expect(await get('late-accept')).toMatchObject({ state: 'active', attempts: 1 });
  });

  it('starts over for a newer job under a reused id', async () => {
    const old = identity('reused', new Date('2026-01-01T00:00:00Z'));
    await recordAcceptedJobs(testDb.database.db, [old]);
    await run(old, 1, { at: new Date(), outcome: 'failed', error: { code: 'X', message: 'boom' } });
    expect(await get('reused')).toMatchObject({ state: 'failed', lastError: { code: 'X', message: 'boom' } });

    await recordAcceptedJobs(testDb.database.db, [identity('reused', new Date('2026-02-01T00:00:00Z'), 'res-new')]);
    expect(await get('reused')).toMatchObject({ state: 'waiting', attempts: 0, lastError: null, businessKey: 'res-new' });
  });

  it('keeps the last error while the job runs again and clears it when it completes; each run is a row', async () => {
    const job = identity('history', new Date());
    await recordAcceptedJobs(testDb.database.db, [job]);
    const starts = [run(job, 1), run(job, 1, { at: new Date(), outcome: 'retried', error: { code: 'DEPENDENCY_UNAVAILABLE', message: '503' } }), run(job, 2)];
    // Submitted together: one job's events still land in order.
    await Promise.all(starts);
    expect(await get('history')).toMatchObject({ state: 'active', attempts: 2, lastError: { code: 'DEPENDENCY_UNAVAILABLE' } });
    await run(job, 2, { at: new Date(), outcome: 'completed', error: null });
    expect(await get('history')).toMatchObject({ state: 'completed', attempts: 2, lastError: null });
    const attempts = await jobRepository.attempts(testDb.database.db, 'calendar-sync', 'history');
    expect(attempts.map(({ run: r, outcome, errorCode }) => ({ r, outcome, errorCode }))).toEqual([
      { r: 1, outcome: 'retried', errorCode: 'DEPENDENCY_UNAVAILABLE' },
      { r: 2, outcome: 'completed', errorCode: null },
    ]);
  });

  it('records an admin action over the rows still in the state it acted on, never over a worker\'s newer write', async () => {
    const { db } = testDb.database;
    const [stillFailed, alreadyDone] = [identity('retried-still-failed', new Date()), identity('retried-already-done', new Date())];
    for (const job of [stillFailed, alreadyDone]) await run(job, 1, { at: new Date(), outcome: 'failed', error: { code: 'X', message: 'boom' } });
    // The retried job ran and completed before the action's transaction.
    await run(alreadyDone, 2, { at: new Date(), outcome: 'completed', error: null });

    await jobRepository.recordAdminAction(db, { jobs: [stillFailed, alreadyDone], state: 'waiting', audit: { actor: 'operator:test', action: 'jobs.bulk-retry' } });
    expect((await get('retried-still-failed'))?.state).toBe('waiting');
    expect((await get('retried-already-done'))?.state).toBe('completed');
    expect(await adminAuditRepository.list(db, { action: 'jobs.bulk-retry', limit: 10 })).toEqual([expect.objectContaining({ actor: 'operator:test' })]);
  });

  it('creates the row of a job no acceptor saw (a scheduled backup) from its first run', async () => {
    const scheduled = { kind: 'backup', id: 'repeat:backup.nightly:1', tenantId: null, businessKey: 'nightly', idempotencyKey: null, createdAt: new Date() };
    await recordAttempt(testDb.database.db, { job: scheduled, run: 1, attempt: 1, workerId: 'w1', startedAt: new Date() });
    expect(await jobRepository.list(testDb.database.db, { kind: 'backup', businessKey: 'nightly' }, { limit: 10 })).toEqual([
      expect.objectContaining({ id: 'repeat:backup.nightly:1', tenantId: null, state: 'active' }),
    ]);
  });
});
