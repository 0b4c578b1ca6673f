import type { Config } from '@jobfleet/config';
import {
  adminAuditRepository,
  appendLockAuditEvents,
  beginIdempotentRequest,
  ensureLockAuditPartitions,
  jobRepository,
  recordAcceptedJobs,
  recordAttempt,
  verifyLockAuditChains,
} from '@jobfleet/db';
import { createLogger } from '@jobfleet/observability';
import { generateKeyringEntry, parseKeyring } from '@jobfleet/secrets';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { startRetention } from './retention';

describe('retention', () => {
  let testDb: TestDatabase;
  const keyring = parseKeyring(generateKeyringEntry('k1'));
  const policy: Config['retention'] = {
    intervalMs: 60_000,
    batchSize: 2,
    syncStatusDays: 90,
    jobHistoryDays: 30,
    adminAuditDays: 400,
    lockAuditMonths: 13,
    lockAuditMonthsAhead: 2,
  };
  const logger = createLogger({ level: 'silent', serviceName: 't' });
  let retention: ReturnType<typeof startRetention>;

  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
    retention = startRetention({ database: testDb.database, logger, keyring, policy });
  });
  afterAll(async () => {
    retention.stop();
    await testDb.drop();
  });

  const rows = <T extends Record<string, unknown>>(query: ReturnType<typeof sql>) => testDb.database.rows<T>(query);
  /** The name of the lock_audit partition of the month `ahead` months from `date`'s (UTC). */
  const partitionOf = (date: Date, ahead = 0) => {
    const start = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + ahead, 1));
    return `lock_audit_${start.getUTCFullYear()}_${String(start.getUTCMonth() + 1).padStart(2, '0')}`;
  };
  const names = async (query: ReturnType<typeof sql>) => (await rows<{ name: string }>(query)).map((row) => row.name);

  it('deletes, in batches, expired idempotency keys, finished sync rows and old audit entries, and nothing else', async () => {
    const { db } = testDb.database;
    const base = { tenantId: 'acme', scope: 'calendar-sync', requestHash: 'h', staleAfterSeconds: 30, ttlSeconds: 3600 };
    for (const key of ['live', 'old-1', 'old-2', 'old-3']) await beginIdempotentRequest(db, { ...base, key, jobId: `job-${key}` });
    await rows(sql`update idempotency_keys set expires_at = now() - interval '1 minute' where key like 'old-%'`);

    // Finished and old: gone. Unfinished, however old, or finished recently: kept.
    await rows(sql`
      insert into sync_status (tenant_id, kind, entity_id, status, updated_at) values
        ('acme', 'reservation', 'synced-old', 'synced', now() - interval '91 days'),
        ('acme', 'reservation', 'failed-old', 'failed', now() - interval '91 days'),
        ('acme', 'reservation', 'synced-new', 'synced', now() - interval '89 days'),
        ('acme', 'reservation', 'pending-old', 'pending', now() - interval '400 days'),
        ('acme', 'reservation', 'running-old', 'running', now() - interval '400 days'),
        ('acme', 'reservation', 'waiting-old', 'waiting', now() - interval '400 days')`);
    await adminAuditRepository.append(db, [
      { actor: 'operator:admin', action: 'job.retry', tenantId: 'acme' },
      { actor: 'operator:admin', action: 'job.cancel', tenantId: 'acme' },
    ]);
    await db.transaction(async (tx) => {
      // Backdated the only way history can be changed: a retention transaction (here an insert).
      await tx.execute(sql`select set_config('jobfleet.retention', 'on', true)`);
      await tx.execute(sql`insert into admin_audit (at, actor, action) values (now() - interval '401 days', 'operator:admin', 'switch.set')`);
    });
    // Counts of deprecated-route calls are read over a year at most.
    await rows(sql`insert into api_keys (id, tenant_id, key_hash, key_prefix, name, scopes) values ('key-1', 'acme', 'h', 'p', 'legacy', '{jobs:read}')`);
    await rows(sql`
      insert into api_deprecated_usage (key_id, tenant_id, route, day, count, last_seen) values
        ('key-1', 'acme', 'GET /v1/usage', current_date - 400, 5, now() - interval '400 days'),
        ('key-1', 'acme', 'GET /v1/usage', current_date - 300, 2, now() - interval '300 days')`);
    // Invoices are never pruned, however old.
    await rows(sql`
      insert into afip_invoices (id, tenant_id, idempotency_key, cuit, pto_vta, cbte_tipo, cbte_nro, status, request, created_at, updated_at)
      values ('inv-old', 'acme', 'inv-old', 30712345671, 1, 1, 1, 'authorized', '{}', now() - interval '3650 days', now() - interval '3650 days')`);

    const report = await retention.runOnce();
    expect(report).toMatchObject({ idempotencyKeys: 3, syncStatus: 2, adminAudit: 1, deprecatedUsage: 1, lockAuditMonthsDropped: [] });
    expect(await rows(sql`select count::int from api_deprecated_usage`)).toEqual([{ count: 2 }]);
    expect(await names(sql`select key as name from idempotency_keys order by key`)).toEqual(['live']);
    expect(await names(sql`select entity_id as name from sync_status order by entity_id`)).toEqual(['pending-old', 'running-old', 'synced-new', 'waiting-old']);
    expect(await names(sql`select action as name from admin_audit order by action`)).toEqual(['job.cancel', 'job.retry']);
    expect(await names(sql`select idempotency_key as name from afip_invoices`)).toEqual(['inv-old']);
    // A second pass has nothing left to do.
    await expect(retention.runOnce()).resolves.toMatchObject({ idempotencyKeys: 0, syncStatus: 0, adminAudit: 0, deprecatedUsage: 0 });
  });

  it('deletes the rows and runs of jobs finished before the retention, and keeps recent and unfinished ones', async () => {
    const { db } = testDb.database;
    const old = new Date(Date.now() - 31 * 86_400_000);
    const job = (id: string, createdAt: Date) => ({ kind: 'calendar-sync', id, tenantId: 'acme', businessKey: id, idempotencyKey: id, createdAt });
    await recordAcceptedJobs(db, [job('old-waiting', old), job('recent-done', new Date())]);
    for (const [id, createdAt] of [['old-done-1', old], ['old-done-2', old], ['old-done-3', old], ['recent-done', new Date()]] as const) {
      await recordAttempt(db, { job: job(id, createdAt), run: 1, attempt: 1, workerId: 'w', startedAt: new Date(), ended: { at: new Date(), outcome: 'completed', error: null } });
    }

    // Three finished old jobs in batches of two.
    await expect(retention.runOnce()).resolves.toMatchObject({ jobs: 3 });
    const left = await jobRepository.list(db, {}, { limit: 10 });
    expect(left.map((row) => row.id).sort()).toEqual(['old-waiting', 'recent-done']);
    expect(await jobRepository.attempts(db, 'calendar-sync', 'old-done-1')).toEqual([]);
    expect(await jobRepository.attempts(db, 'calendar-sync', 'recent-done')).toHaveLength(1);
  });

  it('keeps lock_audit partitions ahead of need and the current months', async () => {
    const now = new Date();
    const report = await retention.runOnce(now);
    expect(report.lockAuditMonthsDropped).toEqual([]);
    const partitions = await names(sql`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'lock_audit'::regclass`);
    expect(partitions).toEqual(expect.arrayContaining([partitionOf(now), partitionOf(now, 1), partitionOf(now, 2), 'lock_audit_default']));
  });

  it('drops old lock_audit months with signed checkpoints: the chains still verify and go on from them', async () => {
    const { db } = testDb.database;
    const event = (chain: string, n: number) => ({ chain, lockKey: `jf:lock:${chain}`, event: 'acquired' as const, owner: 'w1', jobId: `job-${n}`, fencingToken: n, at: new Date() });
    await appendLockAuditEvents(db, [event('series-a', 1), event('series-a', 2), event('series-a', 3), event('series-b', 1)]);
    await expect(verifyLockAuditChains(db, { keyring })).resolves.toEqual({ chains: 2, rows: 4, broken: [] });

    // Fourteen months on, this month is past the 13 kept: its partition goes, with a checkpoint
    // per chain in it.
    const now = new Date();
    const later = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 14, 15));
    const report = await retention.runOnce(later);
    const thisMonth = partitionOf(now);
    expect(report.lockAuditMonthsDropped.map((month) => month.partition)).toContain(thisMonth);
    expect(report.lockAuditMonthsDropped.find((month) => month.partition === thisMonth)?.checkpoints).toBe(2);
    const checkpoints = await rows<{ chain: string; seq: string }>(sql`select chain, seq from lock_audit_checkpoints order by chain`);
    expect(checkpoints.map((row) => [row.chain, Number(row.seq)])).toEqual([
      ['series-a', 3],
      ['series-b', 1],
    ]);

    // The chains go on from their checkpoints and verify, rows before the cut gone.
    await appendLockAuditEvents(db, [event('series-a', 4), event('series-b', 2)]);
    const seqs = await rows<{ chain: string; seq: string }>(sql`select chain, seq from lock_audit order by chain, seq`);
    expect(seqs.map((row) => [row.chain, Number(row.seq)])).toEqual([
      ['series-a', 4],
      ['series-b', 2],
    ]);
    await expect(verifyLockAuditChains(db, { keyring })).resolves.toEqual({ chains: 2, rows: 2, broken: [] });

    // Without the keyring the checkpoints cannot be trusted; a forged one is refused.
    await expect(verifyLockAuditChains(db)).resolves.toMatchObject({ broken: [{ chain: 'series-a', reason: 'checkpoint-signature' }, { chain: 'series-b', reason: 'checkpoint-signature' }] });
    const otherKeyring = parseKeyring(generateKeyringEntry('k1'));
    await expect(verifyLockAuditChains(db, { keyring: otherKeyring })).resolves.toMatchObject({ broken: [{ reason: 'checkpoint-signature' }, { reason: 'checkpoint-signature' }] });
    await rows(sql`update lock_audit_checkpoints set hash = repeat('0', 64) where chain = 'series-b'`);
    await expect(verifyLockAuditChains(db, { keyring })).resolves.toMatchObject({ broken: [{ chain: 'series-b', seq: 1, id: null, reason: 'checkpoint-signature' }] });
  });

  it('reports a chain cut without a checkpoint (rows removed behind retention\'s back)', async () => {
    const { db } = testDb.database;
    const event = (n: number) => ({ chain: 'series-c', lockKey: 'jf:lock:series-c', event: 'acquired' as const, owner: 'w1', fencingToken: n, at: new Date() });
    await appendLockAuditEvents(db, [event(1), event(2), event(3)]);
    await db.transaction(async (tx) => {
      await tx.execute(sql`alter table lock_audit disable trigger user`);
      await tx.execute(sql`delete from lock_audit where chain = 'series-c' and seq < 3`);
      await tx.execute(sql`alter table lock_audit enable trigger user`);
    });
    await expect(verifyLockAuditChains(db, { keyring, chain: 'series-c' })).resolves.toMatchObject({ broken: [{ chain: 'series-c', seq: 3, reason: 'seq-gap' }] });
  });

  it('keeps a month that does not hold the start of a chain in it (a clock that went back) and says so', async () => {
    const { db } = testDb.database;
    await appendLockAuditEvents(db, [{ chain: 'series-d', lockKey: 'jf:lock:series-d', event: 'acquired', owner: 'w1', at: new Date() }]);
    // seq 2 of that chain recorded fourteen months ago: past the cut, while seq 1 is not.
    const now = new Date();
    const past = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 14, 10));
    const pastPartition = partitionOf(past);
    await ensureLockAuditPartitions(db, { now: past, monthsAhead: 0 });
    await rows(sql`
      insert into lock_audit (chain, seq, lock_key, event, owner, at, prev_hash, hash, recorded_at)
      values ('series-d', 2, 'jf:lock:series-d', 'released', 'w1', ${past}, 'x', 'y', ${past})`);
    await expect(retention.runOnce(now)).rejects.toThrow(`${pastPartition} is not the start of chain series-d: kept`);
    // That pass first gave this month its partition back (an earlier test dropped it), moving the
    // rows the default partition held meanwhile into it.
    const thisMonth = partitionOf(now);
    expect(await names(sql`select distinct tableoid::regclass::text as name from lock_audit where chain in ('series-a', 'series-b')`)).toEqual([thisMonth]);
    await expect(verifyLockAuditChains(db, { keyring, chain: 'series-a' })).resolves.toEqual({ chains: 1, rows: 1, broken: [] });
    expect(await names(sql`select to_regclass(${pastPartition})::text as name`)).toEqual([pastPartition]);
    expect(await rows(sql`select 1 from lock_audit_checkpoints where chain = 'series-d'`)).toEqual([]);
  });
});
