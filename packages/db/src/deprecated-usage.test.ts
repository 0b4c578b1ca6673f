import { eq } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { createApiKey } from './api-keys';
import { deprecatedUsageRepository } from './deprecated-usage';
import { apiKeys } from './schema';

describe('counts of calls to deprecated routes', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('adds counts to the stored ones, keeps the latest call, sums over the days asked for, and drops a deleted key', async () => {
    const { db } = testDb.database;
    const pos = await createApiKey(db, { tenantId: 'acme', name: 'pos', scopes: ['jobs:write'] });
    const gone = await createApiKey(db, { tenantId: 'globex', name: 'gone', scopes: ['jobs:read'] });
    const at = (iso: string) => new Date(iso);
    const route = 'POST /v1/jobs/calendar-sync';
    await deprecatedUsageRepository.add(db, [
      { keyId: pos.id, tenantId: 'acme', route, day: '2026-11-29', count: 4, lastSeen: at('2026-11-29T10:00:00Z') },
      { keyId: pos.id, tenantId: 'acme', route, day: '2026-11-30', count: 2, lastSeen: at('2026-11-30T08:00:00Z') },
      { keyId: gone.id, tenantId: 'globex', route: 'GET /v1/usage', day: '2026-11-30', count: 1, lastSeen: at('2026-11-30T09:00:00Z') },
    ]);
    // A second flush, with an older instant from a replica whose clock lags: the latest stays.
    await deprecatedUsageRepository.add(db, [{ keyId: pos.id, tenantId: 'acme', route, day: '2026-11-30', count: 3, lastSeen: at('2026-11-30T07:00:00Z') }]);

    expect(await deprecatedUsageRepository.list(db, { sinceDay: '2026-11-30' })).toEqual([
      { keyId: gone.id, tenantId: 'globex', keyName: 'gone', keyPrefix: gone.prefix, keyRevokedAt: null, route: 'GET /v1/usage', count: 1, lastSeen: at('2026-11-30T09:00:00Z') },
      { keyId: pos.id, tenantId: 'acme', keyName: 'pos', keyPrefix: pos.prefix, keyRevokedAt: null, route, count: 5, lastSeen: at('2026-11-30T08:00:00Z') },
    ]);
    expect((await deprecatedUsageRepository.list(db, { sinceDay: '2026-11-01' })).find((row) => row.keyId === pos.id)?.count).toBe(9);

    await db.delete(apiKeys).where(eq(apiKeys.id, gone.id));
    await deprecatedUsageRepository.add(db, [{ keyId: gone.id, tenantId: 'globex', route: 'GET /v1/usage', day: '2026-11-30', count: 1, lastSeen: at('2026-11-30T10:00:00Z') }]);
    expect((await deprecatedUsageRepository.list(db, { sinceDay: '2026-11-01' })).map((row) => row.keyId)).toEqual([pos.id]);
  });
});
