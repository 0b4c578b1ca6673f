import { beginIdempotentRequest } from '@jobfleet/db';
import { createLogger } from '@jobfleet/observability';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { startIdempotencyRetention } from './retention';

describe('idempotency retention', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('deletes expired keys and keeps live ones', async () => {
    const { db } = testDb.database;
    const base = { tenantId: 'acme', scope: 'calendar-sync', requestHash: 'h', jobId: 'j', staleAfterSeconds: 30 };
    await beginIdempotentRequest(db, { ...base, key: 'live', ttlSeconds: 3600 });
    await beginIdempotentRequest(db, { ...base, key: 'old', ttlSeconds: 3600 });
    await testDb.database.rows(sql`update idempotency_keys set expires_at = now() - interval '1 minute' where key = 'old'`);

    const retention = startIdempotencyRetention({ database: testDb.database, logger: createLogger({ level: 'silent', serviceName: 't' }), intervalMs: 60_000 });
    try {
      await expect(retention.runOnce()).resolves.toBe(1);
    } finally {
      retention.stop();
    }
    const keys = await testDb.database.rows<{ key: string }>(sql`select key from idempotency_keys order by key`);
    expect(keys.map((k) => k.key)).toEqual(['live']);
  });
});
