import { sql } from 'drizzle-orm';
import { appendLockAuditEvents, type LockAuditInput } from '@jobfleet/db';
import { createTestDatabase, type TestDatabase } from '../../../../tests/support/db';
import { startEntryPoint } from '../../../../tests/support/processes';

describe('verify-audit CLI', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase();
  });
  afterAll(async () => {
    await testDb.drop();
  });

  async function run() {
    const cli = startEntryPoint('packages/locks/src/cli/verify-audit.ts', { NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: testDb.url });
    const { code } = await cli.exited;
    return { code, output: cli.output() };
  }

  const event = (chain: string, n: number): LockAuditInput => ({ chain, lockKey: chain, event: 'acquired', owner: 'w', details: { n }, at: new Date() });

  it('exits 0 when every chain verifies and 1 with the first broken link when one does not', async () => {
    const { db } = testDb.database;
    await appendLockAuditEvents(db, [1, 2, 3].flatMap((n) => [event('afip:a', n), event('afip:b', n)]));
    const ok = await run();
    expect(ok.output).toContain('ok     afip:a rows=3');
    expect(ok.output).toContain('2 chains, 6 rows, 0 broken');
    expect(ok.code).toBe(0);

    await db.transaction(async (tx) => {
      await tx.execute(sql`alter table lock_audit disable trigger user`);
      await tx.execute(sql`update lock_audit set owner = 'mallory' where chain = 'afip:b' and seq = 2`);
      await tx.execute(sql`alter table lock_audit enable trigger user`);
    });
    const broken = await run();
    expect(broken.output).toMatch(/BROKEN afip:b rows=3 first broken link: seq=2 id=\d+ reason=hash-mismatch/);
    expect(broken.output).toContain('ok     afip:a rows=3');
    expect(broken.code).toBe(1);
  });
});
