import { beginIdempotentRequest, jobRepository, recordAcceptedJobs, recordAttempt } from '@jobfleet/db';
import { createLogger } from '@jobfleet/observability';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { startRetention } from './retention';

describe('retention', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  const start = () =>
    startRetention({ database: testDb.database, logger: createLogger({ level: 'silent', serviceName: 't' }), intervalMs: 60_000, jobHistoryDays: 30 });

  it('deletes expired keys and keeps live ones', async () => {
    const { db } = testDb.database;
    const base = { tenantId: 'acme', scope: 'calendar-sync', requestHash: 'h', jobId: 'j', staleAfterSeconds: 30 };
    await beginIdempotentRequest(db, { ...base, key: 'live', ttlSeconds: 3600 });
    await beginIdempotentRequest(db, { ...base, key: 'old', ttlSeconds: 3600 });
    await testDb.database.rows(sql`update idempotency_keys set expires_at = now() - interval '1 minute' where key = 'old'`);

    const retention = start();
    try {
      await expect(retention.runOnce()).resolves.toEqual({ idempotencyKeys: 1, jobs: 0 });
    } finally {
      retention.stop();
    }
    const keys = await testDb.database.rows<{ key: string }>(sql`select key from idempotency_keys order by key`);
    expect(keys.map((k) => k.key)).toEqual(['live']);
  });

  it('deletes the rows and runs of jobs finished before the retention, and keeps recent and unfinished ones', async () => {
    const { db } = testDb.database;
    const old = new Date(Date.now() - 31 * 86_400_000);
    const job = (id: string, createdAt: Date) => ({ kind: 'calendar-sync', id, tenantId: 'acme', businessKey: id, idempotencyKey: id, createdAt });
    await recordAcceptedJobs(db, [job('old-waiting', old), job('recent-done', new Date())]);
    for (const [id, createdAt] of [['old-done', old], ['recent-done', new Date()]] as const) {
      await recordAttempt(db, { job: job(id, createdAt), run: 1, attempt: 1, workerId: 'w', startedAt: new Date(), ended: { at: new Date(), outcome: 'completed', error: null } });
    }

    const retention = start();
    try {
      await expect(retention.runOnce()).resolves.toEqual({ idempotencyKeys: 0, jobs: 1 });
    } finally {
      retention.stop();
    }
    const left = await jobRepository.list(db, {}, { limit: 10 });
    expect(left.map((row) => row.id).sort()).toEqual(['old-waiting', 'recent-done']);
    expect(await jobRepository.attempts(db, 'calendar-sync', 'old-done')).toEqual([]);
    expect(await jobRepository.attempts(db, 'calendar-sync', 'recent-done')).toHaveLength(1);
  });
});
