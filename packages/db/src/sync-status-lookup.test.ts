import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { syncStatusRepository } from './sync-status';
import { findSyncStatusByJobId } from './sync-status-lookup';

describe('findSyncStatusByJobId', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it("finds the row while it names the job, for the job's tenant only", async () => {
    const { db } = testDb.database;
    const entity = { tenantId: 'acme', kind: 'reservation', entityId: 'r1', version: 1, jobId: 'job-v1' };
    await syncStatusRepository.recordEnqueued(db, entity);
    await expect(findSyncStatusByJobId(db, 'acme', 'job-v1')).resolves.toMatchObject({ entityId: 'r1', status: 'pending' });
    await expect(findSyncStatusByJobId(db, 'globex', 'job-v1')).resolves.toBeUndefined();

    await syncStatusRepository.recordEnqueued(db, { ...entity, version: 2, jobId: 'job-v2' });
    await expect(findSyncStatusByJobId(db, 'acme', 'job-v1')).resolves.toBeUndefined();
    await expect(findSyncStatusByJobId(db, 'acme', 'job-v2')).resolves.toMatchObject({ version: 2 });
  });
});
