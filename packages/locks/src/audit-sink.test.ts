import { sql } from 'drizzle-orm';
import pg from 'pg';
import { openDatabase, verifyLockAuditChains, type LockAuditInput } from '@jobfleet/db';
import { createMetrics } from '@jobfleet/observability';
import { captureLogs, metricValue } from '@jobfleet/observability/testing';
import { waitFor } from '../../../tests/support/processes';
import { createBufferedAuditSink } from './audit-sink';
import { auditRows, createLockTestBed, type LockTestBed } from './test-support';

describe('buffered lock audit sink', () => {
  let bed: LockTestBed;
  beforeAll(async () => {
    bed = await createLockTestBed('audit-sink', { sink: { flushIntervalMs: 10, maxBackoffMs: 50 } });
  });
  afterAll(async () => {
    await bed.close();
  });

  const buffered = () => metricValue(bed.metrics, 'lock_audit_buffered_events');
  const setOffline = (offline: boolean) =>
    bed.testDb.database.db.execute(
      offline ? sql`alter table lock_audit rename to lock_audit_offline` : sql`alter table lock_audit_offline rename to lock_audit`,
    );

  /** acquire, extend, release on `key`: three audit events. */
  async function lockCycle(key: string) {
    const lock = await bed.managers[0]!.acquire(key, { jobId: 'job-1' });
    expect(lock).not.toBeNull();
    await expect(lock!.extend()).resolves.toBe(true);
    await expect(lock!.release()).resolves.toBe(true);
  }

  it('keeps locking while Postgres refuses audit writes, then writes the buffered events in order once it is back', async () => {
    const key = 'outage:key';
    await setOffline(true);
    try {
      for (let i = 0; i < 3; i += 1) await lockCycle(key);
      await waitFor(async () => ((await metricValue(bed.metrics, 'lock_audit_write_failures_total', { reason: 'error' })) ?? 0) >= 2, {
        timeoutMs: 5000,
        what: 'failed audit writes',
      });
      expect(bed.sink.buffered).toBe(9);
      await expect(buffered()).resolves.toBe(9);
    } finally {
      await setOffline(false);
    }
    await bed.sink.flush();
    await expect(buffered()).resolves.toBe(0);
    const rows = await auditRows(bed.testDb.database.db, key);
    expect(rows.map((r) => r.event)).toEqual(Array.from({ length: 3 }, () => ['acquired', 'extended', 'released']).flat());
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await expect(verifyLockAuditChains(bed.testDb.database.db, { chain: key })).resolves.toEqual({ chains: 1, rows: 9, broken: [] });
    expect(bed.logs.lines().some((line) => line.msg === 'lock audit write failed; events stay buffered')).toBe(true);
  });

  it('never makes a lock operation wait for an audit write that hangs', async () => {
    const key = 'hang:key';
    // Another session holds the table: every audit insert now blocks until it lets go.
    const blocker = new pg.Client({ connectionString: bed.testDb.url });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table lock_audit in access exclusive mode');
      await lockCycle(key);
      await lockCycle(key);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(bed.sink.buffered).toBe(6);
      await blocker.query('rollback');
    } finally {
      await blocker.end();
    }
    await bed.sink.flush();
    expect(await auditRows(bed.testDb.database.db, key)).toHaveLength(6);
  });

  it('drops the oldest events when the buffer is full and counts the drops', async () => {
    const { metrics, logs, testDb } = bed;
    const sink = createBufferedAuditSink({ database: testDb.database, metrics, logger: logs.logger, maxBuffered: 5, flushIntervalMs: 10 });
    const droppedBefore = (await metricValue(metrics, 'lock_audit_write_failures_total', { reason: 'dropped' })) ?? 0;
    const chain = 'overflow:key';
    await setOffline(true);
    try {
      for (let n = 1; n <= 8; n += 1) sink.record(event(chain, n));
      expect(sink.buffered).toBe(5);
      expect(await metricValue(metrics, 'lock_audit_write_failures_total', { reason: 'dropped' })).toBe(droppedBefore + 3);
    } finally {
      await setOffline(false);
    }
    await sink.close();
    const rows = await auditRows(testDb.database.db, chain);
    expect(rows.map((r) => (r.details as { n: number }).n)).toEqual([4, 5, 6, 7, 8]);
    expect(logs.lines().some((line) => line.level === 'error' && line.dropped === 1)).toBe(true);
  });

  it('gives up at close on an unreachable Postgres, counting what it could not write', async () => {
    const database = openDatabase({ url: 'postgres://postgres@127.0.0.1:1/nowhere', dataDir: '.data' });
    const metrics = createMetrics();
    const logs = captureLogs('warn');
    const sink = createBufferedAuditSink({ database, metrics, logger: logs.logger, flushIntervalMs: 5, maxBackoffMs: 20 });
    try {
      for (let n = 1; n <= 4; n += 1) sink.record(event('dead:key', n));
      await waitFor(async () => (await metricValue(metrics, 'lock_audit_write_failures_total', { reason: 'error' })) ?? 0, {
        timeoutMs: 5000,
        what: 'a failed write',
      });
      await expect(metricValue(metrics, 'lock_audit_buffered_events')).resolves.toBe(4);
      await sink.close({ timeoutMs: 100 });
      expect(await metricValue(metrics, 'lock_audit_write_failures_total', { reason: 'dropped' })).toBe(4);
      await expect(metricValue(metrics, 'lock_audit_buffered_events')).resolves.toBe(0);
      sink.record(event('dead:key', 5));
      expect(await metricValue(metrics, 'lock_audit_write_failures_total', { reason: 'dropped' })).toBe(5);
    } finally {
      await database.close();
    }
  });
});

function event(chain: string, n: number): LockAuditInput {
  return { chain, lockKey: chain, event: 'acquired', owner: 'worker-x', fencingToken: n, details: { n }, at: new Date() };
}
