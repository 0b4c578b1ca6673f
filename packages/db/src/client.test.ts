import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { startTcpProxy } from '../../../tests/support/tcp-proxy';
import { openDatabase } from './client';

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
      // Partitions (lock_audit's months) are part of their table, not tables of the schema.
      sql`select c.relname as table_name from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition order by c.relname`,
    );
    expect(rows.map((r) => r.table_name)).toEqual([
      'admin_audit',
      'afip_invoices',
      'afip_issuers',
      'afip_voucher_fences',
      'api_deprecated_usage',
      'api_keys',
      'backups',
      'feature_flags',
      'fleet_switches',
      'google_connections',
      'idempotency_keys',
      'job_attempts',
      'jobs',
      'lock_audit',
      'lock_audit_checkpoints',
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

  it('a connection reset inside a transaction fails the transaction, not the process, and the pool recovers', async () => {
    const url = new URL(testDb.url);
    const proxy = await startTcpProxy({ targetHost: url.hostname, targetPort: Number(url.port || 5432) });
    url.host = `127.0.0.1:${proxy.port}`;
    const proxied = openDatabase({ url: url.toString(), dataDir: '.data', poolMax: 2 });
    try {
      // A checked-out client (a transaction's) has no pool listener: its socket's 'error' event
      // crashed the process unless the client has one of its own.
      const transaction = proxied.db.transaction(async (tx) => {
        await tx.execute(sql`select 1`);
        proxy.resetAll();
        await new Promise((resolve) => setTimeout(resolve, 200));
        await tx.execute(sql`select 2`);
      });
      await expect(transaction).rejects.toThrow();
      // The broken client left the pool: the next statement gets a new connection.
      await expect(proxied.rows<{ n: number }>(sql`select 3 as n`)).resolves.toEqual([{ n: 3 }]);
    } finally {
      await proxied.close();
      await proxy.close();
    }
  });
});
