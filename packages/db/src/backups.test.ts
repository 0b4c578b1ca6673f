import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { backupRepository } from './backups';

describe('backups repository', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase();
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('runs a schedule slot once: a second start gets the existing run', async () => {
    const { db } = testDb.database;
    const slot = new Date('2026-11-23T03:00:00Z');
    const first = await backupRepository.start(db, { schedule: 'nightly', slot, target: 'fs', jobId: 'a' });
    const second = await backupRepository.start(db, { schedule: 'nightly', slot, target: 'fs', jobId: 'b' });
    expect(first.created).toBe(true);
    expect(second).toMatchObject({ created: false, row: { id: first.row.id, jobId: 'a' } });

    await backupRepository.fail(db, first.row, { name: 'Error', code: 'ENOSPC', message: 'disk full', at: new Date().toISOString() });
    const retried = await backupRepository.start(db, { schedule: 'nightly', slot, target: 'fs', jobId: 'c' });
    expect(retried).toMatchObject({ created: true, row: { id: first.row.id, status: 'running', jobId: 'c', error: null } });
  });

  it('lets the same job take over its own running slot (its worker died), but not another job', async () => {
    const { db } = testDb.database;
    const slot = new Date('2026-11-24T03:00:00Z');
    const first = await backupRepository.start(db, { schedule: 'nightly', slot, target: 'fs', jobId: 'job-1' });
    const other = await backupRepository.start(db, { schedule: 'nightly', slot, target: 'fs', jobId: 'job-2' });
    const again = await backupRepository.start(db, { schedule: 'nightly', slot, target: 'fs', jobId: 'job-1' });

    expect(other).toMatchObject({ created: false, row: { id: first.row.id, jobId: 'job-1', status: 'running' } });
    expect(again).toMatchObject({ created: true, row: { id: first.row.id, jobId: 'job-1', status: 'running' } });

    // The attempt that was taken over is fenced out; the one that took over finishes the run.
    const result = { location: '/b/x.dump', bytes: 10, sha256: 'ab', restoreCheck: null };
    expect(again.row.runToken).not.toBe(first.row.runToken);
    expect(await backupRepository.recordPublishing(db, first.row, '/b/stale.dump')).toBe(false);
    expect(await backupRepository.recordPublishing(db, again.row, '/b/x.dump')).toBe(true);
    expect(await backupRepository.succeed(db, first.row, { ...result, location: '/b/stale.dump' })).toBe(false);
    expect(await backupRepository.fail(db, first.row, { name: 'Error', code: 'LATE', message: 'late', at: new Date().toISOString() })).toBe(false);
    const running = await backupRepository.runningTokens(db, 'nightly');
    expect(running).toContain(again.row.runToken);
    expect(running).not.toContain(first.row.runToken);
    expect(await backupRepository.succeed(db, again.row, result)).toBe(true);
    expect(await backupRepository.get(db, first.row.id)).toMatchObject({ status: 'succeeded', location: '/b/x.dump', error: null });
    expect(await backupRepository.runningTokens(db, 'nightly')).not.toContain(again.row.runToken);
    const afterSuccess = await backupRepository.start(db, { schedule: 'nightly', slot, target: 'fs', jobId: 'job-1' });
    expect(afterSuccess).toMatchObject({ created: false, row: { status: 'succeeded' } });
    const last = await backupRepository.lastSuccessBySchedule(db);
    expect(last.get('nightly')).toMatchObject({ bytes: 10 });
  });

  it('lets on-demand runs (no slot) repeat and lists newest first with a cursor', async () => {
    const { db } = testDb.database;
    for (let i = 0; i < 3; i++) await backupRepository.start(db, { schedule: 'on-demand', slot: null, target: 'fs', jobId: `d${i}` });
    // A retry of the same on-demand job continues its row.
    const retry = await backupRepository.start(db, { schedule: 'on-demand', slot: null, target: 'fs', jobId: 'd2' });
    expect(retry.created).toBe(true);
    const firstPage = await backupRepository.list(db, { limit: 2 });
    const last = firstPage.at(-1);
    expect(firstPage).toHaveLength(2);
    const secondPage = await backupRepository.list(db, { limit: 10, cursor: last ? { startedAt: last.startedAt, id: last.id } : undefined });
    const all = [...firstPage, ...secondPage];
    expect(all).toHaveLength(5);
    expect(new Set(all.map((r) => r.id)).size).toBe(5);
    const started = all.map((r) => r.startedAt.getTime());
    expect([...started].sort((a, b) => b - a)).toEqual(started);
  });
});
