import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { recordEnqueuedMany, syncStatusRepository } from './sync-status';

describe('sync_status writes', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['t1'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  const entity = (entityId: string, version: number, jobId = 'job-1') => ({ tenantId: 't1', kind: 'reservation', entityId, version, jobId });
  const error = { name: 'Error', code: 'X', message: 'late', at: new Date().toISOString() };
  const status = async (entityId: string) => (await syncStatusRepository.get(testDb.database.db, 't1', 'reservation', entityId))?.status;

  it('keeps synced for its version against late writes of the same version, and lets a newer version through', async () => {
    const { db } = testDb.database;
    await syncStatusRepository.recordRunning(db, entity('r1', 1), 1);
    await syncStatusRepository.recordSynced(db, entity('r1', 1), 1, 'event-1');

    expect(await syncStatusRepository.recordEnqueued(db, entity('r1', 1, 'job-2'))).toBe(false);
    expect(await syncStatusRepository.recordFailure(db, entity('r1', 1), 1, error, true)).toBe(false);
    expect(await syncStatusRepository.recordRunning(db, entity('r1', 1), 2)).toBe(false);
    expect(await status('r1')).toBe('synced');

    expect(await syncStatusRepository.recordEnqueued(db, entity('r1', 2, 'job-3'))).toBe(true);
    expect(await status('r1')).toBe('pending');
  });

  it('lets a failed version be tried again, and never lets an older version overwrite a newer one', async () => {
    const { db } = testDb.database;
    await syncStatusRepository.recordFailure(db, entity('r2', 3), 8, error, true);
    expect(await syncStatusRepository.recordEnqueued(db, entity('r2', 3, 'job-again'))).toBe(true);
    expect(await status('r2')).toBe('pending');
    expect(await syncStatusRepository.recordSynced(db, entity('r2', 2), 1, 'old')).toBe(false);
    expect(await status('r2')).toBe('pending');
  });

  it('stores an error exactly as given, quotes, backslashes, braces and non-ASCII included', async () => {
    const { db } = testDb.database;
    const awkward = { ...error, message: 'a "quoted" \\ back{slash}, ñandú, 日本', details: { nested: [1, null, 'x,y'] } };
    await syncStatusRepository.recordFailure(db, entity('r3', 1), 2, awkward, false);
    expect(await syncStatusRepository.get(db, 't1', 'reservation', 'r3')).toMatchObject({ status: 'pending', attempts: 2, lastError: awkward, lastSyncedAt: null });
  });

  it('writes of many jobs at once (one statement) keep each row exact, and order per entity', async () => {
    const { db } = testDb.database;
    const ids = Array.from({ length: 60 }, (_, index) => `many-${index}`);
    await Promise.all(ids.map((id) => syncStatusRepository.recordEnqueued(db, entity(id, 1, `job-${id}`))));
    await Promise.all(ids.map((id, index) => (index % 2 === 0 ? syncStatusRepository.recordRunning(db, entity(id, 1, `job-${id}`), 1) : Promise.resolve(true))));
    const outcomes = await Promise.all(
      ids.flatMap((id, index) => [
        syncStatusRepository.recordSynced(db, entity(id, 1, `job-${id}`), 1, `event-${id}`),
        // Submitted after synced, in the same turn: it lands after it and is refused.
        index % 3 === 0 ? syncStatusRepository.recordFailure(db, entity(id, 1, `job-${id}`), 1, error, true) : Promise.resolve(false),
      ]),
    );
    expect(outcomes.filter((written, index) => index % 2 === 0 && written)).toHaveLength(60);
    expect(outcomes.filter((written, index) => index % 2 === 1 && written)).toHaveLength(0);
    for (const id of ['many-0', 'many-7', 'many-59']) {
      const row = await syncStatusRepository.get(db, 't1', 'reservation', id);
      expect(row).toMatchObject({ status: 'synced', version: 1, externalRef: `event-${id}`, attempts: 1, lastError: null, jobId: `job-${id}` });
      expect(row?.lastSyncedAt).toBeInstanceOf(Date);
    }
  });

  it('records many enqueued jobs in one statement, leaving in each row what single writes in that order would', async () => {
    const { db } = testDb.database;
    await syncStatusRepository.recordSynced(db, entity('m-synced', 1), 1, 'event-1');
    await syncStatusRepository.recordEnqueued(db, entity('m-newer', 5, 'job-newer'));
    await recordEnqueuedMany(db, [
      entity('m-1', 1, 'job-a'),
      // One entity twice: the higher version wins, then the later of equal versions.
      entity('m-twice', 2, 'job-b'),
      entity('m-twice', 1, 'job-c'),
      entity('m-twice', 2, 'job-d'),
      entity('m-synced', 1, 'job-late'),
      entity('m-newer', 4, 'job-older'),
    ]);
    const row = (entityId: string) => syncStatusRepository.get(db, 't1', 'reservation', entityId);
    expect(await row('m-1')).toMatchObject({ status: 'pending', version: 1, jobId: 'job-a', attempts: 0, lastError: null });
    expect(await row('m-twice')).toMatchObject({ status: 'pending', version: 2, jobId: 'job-d' });
    expect(await row('m-synced')).toMatchObject({ status: 'synced', jobId: 'job-1', externalRef: 'event-1' });
    expect(await row('m-newer')).toMatchObject({ version: 5, jobId: 'job-newer' });

    await syncStatusRepository.recordFailure(db, entity('m-1', 1, 'job-a'), 3, error, true);
    await recordEnqueuedMany(db, [entity('m-1', 1, 'job-again')]);
    expect(await row('m-1')).toMatchObject({ status: 'pending', jobId: 'job-again', attempts: 0, lastError: null });
    await expect(recordEnqueuedMany(db, [])).resolves.toBeUndefined();
  });
});
