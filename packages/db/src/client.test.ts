import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';

describe('database client', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase();
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('clones a migrated database with every table of the schema', async () => {
    const rows = await testDb.database.rows<{ table_name: string }>(
      sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
    );
    expect(rows.map((r) => r.table_name)).toEqual([
      'admin_audit',
      'afip_invoices',
      'afip_issuers',
      'afip_voucher_fences',
      'api_keys',
      'backups',
      'google_connections',
      'idempotency_keys',
      'job_attempts',
      'jobs',
      'lock_audit',
      'sync_status',
      'tenants',
    ]);
  });

  it('migrating again is a no-op', async () => {
    await expect(testDb.database.migrate()).resolves.toBeUndefined();
  });

  it('ping answers within its timeout and rejects once the pool is gone', async () => {
    await expect(testDb.database.ping(1000)).resolves.toBeUndefined();
    const other = await createTestDatabase();
    await other.database.close();
    await expect(other.database.ping(1000)).rejects.toThrow();
    await other.drop();
  });
});
