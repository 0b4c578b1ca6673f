import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { adminAuditRepository } from './admin-audit';

describe('the admin audit', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('records who did what with the filter, and lists newest first per tenant with keyset pages', async () => {
    const { db } = testDb.database;
    await adminAuditRepository.append(db, [
      { actor: 'operator:admin', action: 'jobs.bulk-retry', tenantId: 'acme', filter: { kind: 'calendar-sync', state: 'failed' }, detail: { retried: 3 } },
      { actor: 'api-key:k1', actorTenantId: 'globex', action: 'job.cancel', tenantId: 'globex', target: { jobId: 'j1' } },
      { actor: 'system:flag-rollback', action: 'flag.rollback', tenantId: 'acme', target: { flag: 'new-sync' }, detail: { failureRatio: 0.4 } },
    ]);
    const acme = await adminAuditRepository.list(db, { tenantId: 'acme', limit: 10 });
    expect(acme.map((row) => row.action)).toEqual(['flag.rollback', 'jobs.bulk-retry']);
    expect(acme[1]).toMatchObject({ actor: 'operator:admin', actorTenantId: null, filter: { kind: 'calendar-sync', state: 'failed' }, detail: { retried: 3 } });
    expect(acme[1]?.at).toBeInstanceOf(Date);

    const firstPage = await adminAuditRepository.list(db, { limit: 2 });
    const secondPage = await adminAuditRepository.list(db, { limit: 2, beforeId: firstPage[1]?.id });
    expect([...firstPage, ...secondPage].map((row) => row.action)).toEqual(['flag.rollback', 'job.cancel', 'jobs.bulk-retry']);
    expect(await adminAuditRepository.list(db, { action: 'job.cancel', limit: 10 })).toHaveLength(1);
  });

  it('refuses to change or erase history, except a delete inside a retention transaction', async () => {
    const { db } = testDb.database;
    // drizzle wraps the driver's error; the trigger's refusal is its cause.
    const refusalOf = (statement: ReturnType<typeof sql>) =>
      db.execute(statement).then(
        () => 'accepted',
        (error: unknown) => String((error as { cause?: unknown }).cause),
      );
    expect(await refusalOf(sql`update admin_audit set actor = 'someone-else'`)).toMatch(/append-only \(UPDATE refused\)/);
    expect(await refusalOf(sql`delete from admin_audit`)).toMatch(/append-only \(DELETE refused\)/);
    expect(await refusalOf(sql`truncate admin_audit`)).toMatch(/append-only \(TRUNCATE refused\)/);
    expect(await adminAuditRepository.list(db, { limit: 10 })).toHaveLength(3);

    await db.transaction(async (tx) => {
      await tx.execute(sql`select set_config('jobfleet.retention', 'on', true)`);
      await tx.execute(sql`delete from admin_audit where action = 'job.cancel'`);
    });
    expect((await adminAuditRepository.list(db, { limit: 10 })).map((row) => row.action)).toEqual(['flag.rollback', 'jobs.bulk-retry']);
    // The setting was local to that transaction.
    expect(await refusalOf(sql`delete from admin_audit`)).toMatch(/append-only \(DELETE refused\)/);
  });
});
