import { verifyLockAuditChains } from '@jobfleet/db';
import { metricValue } from '@jobfleet/observability/testing';
import { waitFor } from '../../../tests/support/processes';
import { LockLostError, LockUnavailableError } from './errors';
import { lockFamily } from './lock';
import { auditRows, createLockTestBed, sleep, type LockTestBed } from './test-support';

describe('lock manager', () => {
  let bed: LockTestBed;
  let keyCounter = 0;
  beforeAll(async () => {
    bed = await createLockTestBed('locks', { workers: 3 });
  });
  afterAll(async () => {
    await bed.close();
  });

  function newKey(family = 'test'): string {
    keyCounter += 1;
    return `${family}:key-${keyCounter}`;
  }
  const managers = () => bed.managers as [LockTestBed['managers'][number], LockTestBed['managers'][number], LockTestBed['managers'][number]];
  const redisKey = (key: string) => `${bed.prefix}:${key}`;

  it('never lets two of 10 contenders on 3 connections hold the lock at once, and fencing tokens strictly increase', async () => {
    const key = newKey('mutex');
    const holderFlag = `${bed.prefix}:holder`;
    const entered: number[] = [];
    let overlaps = 0;
    await Promise.all(
      Array.from({ length: 10 }, async (_, contender) => {
        const manager = bed.managers[contender % 3]!;
        const redis = bed.connections[contender % 3]!;
        for (let round = 0; round < 3; round += 1) {
          await manager.withLock(key, { waitMs: 30_000, retryDelayMs: 5, ttlMs: 5000, jobId: `job-${contender}-${round}` }, async (lock) => {
            if ((await redis.set(holderFlag, lock.token, 'NX')) !== 'OK') overlaps += 1;
            entered.push(lock.fencingToken);
            await sleep(2);
            if ((await redis.get(holderFlag)) !== lock.token) overlaps += 1;
            await redis.del(holderFlag);
          });
        }
      }),
    );
    expect(overlaps).toBe(0);
    expect(entered).toHaveLength(30);
    for (let i = 1; i < entered.length; i += 1) expect(entered[i]).toBeGreaterThan(entered[i - 1]!);

    await bed.sink.flush();
    const rows = await auditRows(bed.testDb.database.db, key);
    expect(rows.filter((r) => r.event === 'acquired')).toHaveLength(30);
    expect(rows.filter((r) => r.event === 'released')).toHaveLength(30);
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
    await expect(verifyLockAuditChains(bed.testDb.database.db, { chain: key })).resolves.toMatchObject({ broken: [] });
  });

  it('hands out a higher fencing token at each acquisition of a key', async () => {
    const key = newKey();
    const [a, b] = managers();
    const first = (await a.acquire(key))!;
    await first.release();
    const second = (await b.acquire(key))!;
    await second.release();
    expect(second.fencingToken).toBe(first.fencingToken + 1);
  });

  it('lets another owner take a lock whose ttl passed without extension; the first holder can neither extend nor release it', async () => {
    const key = newKey();
    const [a, b] = managers();
    const first = (await a.acquire(key, { ttlMs: 150, autoExtend: false }))!;
    await expect(b.acquire(key)).resolves.toBeNull();
    await sleep(250);
    const second = (await b.acquire(key, { ttlMs: 10_000 }))!;
    expect(second).not.toBeNull();

    await expect(first.extend()).resolves.toBe(false);
    expect(first.signal.aborted).toBe(true);
    expect(first.signal.reason).toBeInstanceOf(LockLostError);
    await expect(first.release()).resolves.toBe(false);
    // The stale holder touched nothing: the key is still the second holder's, with its ttl.
    const redis = bed.connections[0]!;
    await expect(redis.get(redisKey(key))).resolves.toBe(second.token);
    expect(await redis.pttl(redisKey(key))).toBeGreaterThan(5000);
    await expect(second.release()).resolves.toBe(true);

    await bed.sink.flush();
    const events = (await auditRows(bed.testDb.database.db, key)).map((r) => [r.event, r.owner]);
    expect(events).toEqual([
      ['acquired', 'worker-0'],
      ['conflict', 'worker-1'],
      ['lost', 'worker-0'],
      ['acquired', 'worker-1'],
      ['expired', 'worker-0'],
      ['released', 'worker-1'],
    ]);
  });

  it('aborts the signal and counts a loss when an extension finds the lock taken', async () => {
    const key = newKey('stolen');
    const [a] = managers();
    const lostBefore = (await metricValue(bed.metrics, 'lock_extensions_total', { result: 'lost' })) ?? 0;
    const lock = (await a.acquire(key, { ttlMs: 300 }))!;
    // As after a failover that lost the key and a second acquisition.
    await bed.connections[1]!.set(redisKey(key), 'someone-else', 'PX', 10_000);
    await waitFor(() => lock.signal.aborted, { timeoutMs: 2000, what: 'the signal to abort', intervalMs: 10 });
    expect(lock.signal.reason).toMatchObject({ code: 'LOCK_LOST', reason: 'taken' });
    expect(await metricValue(bed.metrics, 'lock_extensions_total', { result: 'lost' })).toBe(lostBefore + 1);
    await expect(lock.release()).resolves.toBe(false);
    await expect(bed.connections[0]!.get(redisKey(key))).resolves.toBe('someone-else');
  });

  it('keeps a lock alive past its ttl while held, by extending it automatically', async () => {
    const key = newKey();
    const [a, b] = managers();
    const lock = (await a.acquire(key, { ttlMs: 200 }))!;
    for (let i = 0; i < 6; i += 1) {
      await sleep(100);
      await expect(b.acquire(key)).resolves.toBeNull();
    }
    expect(lock.signal.aborted).toBe(false);
    await expect(lock.release()).resolves.toBe(true);
    await bed.sink.flush();
    const extended = (await auditRows(bed.testDb.database.db, key)).filter((r) => r.event === 'extended');
    expect(extended.length).toBeGreaterThanOrEqual(3);
    expect(extended[0]?.details).toEqual({ ttlMs: 200, auto: true });
  });

  it('audits acquired, conflict (once per call), extended and released with owner, job, tenant and fencing token', async () => {
    const key = newKey('afip');
    const [a, b] = managers();
    const lock = (await a.acquire(key, { jobId: 'job-42', tenantId: 'acme', ttlMs: 10_000 }))!;
    await expect(b.acquire(key, { jobId: 'job-43', waitMs: 150, retryDelayMs: 20 })).resolves.toBeNull();
    await expect(lock.extend(20_000)).resolves.toBe(true);
    await expect(lock.release()).resolves.toBe(true);
    await bed.sink.flush();

    const rows = await auditRows(bed.testDb.database.db, key);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    const [acquired, conflict, extended, released] = rows;
    const holder = { owner: 'worker-0', jobId: 'job-42', tenantId: 'acme', fencingToken: lock.fencingToken, lockKey: redisKey(key) };
    expect(acquired).toMatchObject({ event: 'acquired', ...holder, details: { ttlMs: 10_000, tries: 1 } });
    expect(conflict).toMatchObject({ event: 'conflict', owner: 'worker-1', jobId: 'job-43', tenantId: null, fencingToken: null });
    expect(conflict?.details).toMatchObject({ outcome: 'unavailable', refusals: expect.any(Number) });
    expect((conflict?.details as { refusals: number }).refusals).toBeGreaterThan(1);
    expect(extended).toMatchObject({ event: 'extended', ...holder, details: { ttlMs: 20_000, auto: false } });
    expect(released).toMatchObject({ event: 'released', ...holder });
    await expect(verifyLockAuditChains(bed.testDb.database.db, { chain: key })).resolves.toEqual({ chains: 1, rows: 4, broken: [] });
  });

  it('withLock throws a retryable LockUnavailableError when the lock stays held, and releases after fn throws', async () => {
    const key = newKey();
    const [a, b] = managers();
    const held = (await a.acquire(key))!;
    const refused = b.withLock(key, { waitMs: 50 }, async () => 'never');
    await expect(refused).rejects.toBeInstanceOf(LockUnavailableError);
    await expect(refused).rejects.toMatchObject({ code: 'LOCK_UNAVAILABLE', retryable: true, key });
    await held.release();

    await expect(
      b.withLock(key, {}, async (lock) => {
        expect(lock.signal.aborted).toBe(false);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(a.withLock(key, {}, async (lock) => lock.fencingToken)).resolves.toBe(held.fencingToken + 2);
    await expect(bed.connections[0]!.exists(redisKey(key))).resolves.toBe(0);
  });

  it('counts operations, conflicts by key family and hold time in the metrics', async () => {
    const { metrics } = bed;
    const key = newKey('family');
    const [a, b] = managers();
    const before = async () => ({
      acquired: (await metricValue(metrics, 'lock_operations_total', { operation: 'acquire', result: 'acquired' })) ?? 0,
      unavailable: (await metricValue(metrics, 'lock_operations_total', { operation: 'acquire', result: 'unavailable' })) ?? 0,
      released: (await metricValue(metrics, 'lock_operations_total', { operation: 'release', result: 'released' })) ?? 0,
      conflicts: (await metricValue(metrics, 'lock_conflicts_total', { lock: 'family' })) ?? 0,
      holds: (await metricValue(metrics, 'lock_hold_seconds_count', { lock: 'family' })) ?? 0,
    });
    const start = await before();
    const lock = (await a.acquire(key))!;
    await b.acquire(key);
    await lock.release();
    expect(await before()).toEqual({
      acquired: start.acquired + 1,
      unavailable: start.unavailable + 1,
      released: start.released + 1,
      conflicts: start.conflicts + 1,
      holds: start.holds + 1,
    });
    expect(lockFamily('afip:30712345671:1:1')).toBe('afip');
    expect(lockFamily('plain')).toBe('plain');
  });
});
