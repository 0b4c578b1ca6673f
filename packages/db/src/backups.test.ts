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

    await backupRepository.fail(db, first.row.id, { message: 'disk full' });
    const retried = await backupRepository.start(db, { schedule: 'nightly', slot, target: 'fs', jobId: 'c' });
    expect(retried).toMatchObject({ created: true, row: { id: first.row.id, status: 'running', jobId: 'c', error: null } });
  });

  it('lets on-demand runs (no slot) repeat and lists newest first with a cursor', async () => {
    const { db } = testDb.database;
    for (let i = 0; i < 3; i++) await backupRepository.start(db, { schedule: 'on-demand', slot: null, target: 'fs', jobId: `d${i}` });
    const firstPage = await backupRepository.list(db, { limit: 2 });
    const last = firstPage.at(-1);
    expect(firstPage).toHaveLength(2);
    const secondPage = await backupRepository.list(db, { limit: 10, cursor: last ? { startedAt: last.startedAt, id: last.id } : undefined });
    const all = [...firstPage, ...secondPage];
    expect(all).toHaveLength(4);
    expect(new Set(all.map((r) => r.id)).size).toBe(4);
    const started = all.map((r) => r.startedAt.getTime());
    expect([...started].sort((a, b) => b - a)).toEqual(started);
  });
});
