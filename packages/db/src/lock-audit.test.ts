import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { asc, eq, sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { openDatabase } from './client';
import { appendLockAuditEvents, GENESIS_HASH, verifyLockAuditChains, type LockAuditInput } from './lock-audit';
import { lockAudit } from './schema';

describe('lock audit chain', () => {
  let testDb: TestDatabase;
  let chainCounter = 0;
  beforeAll(async () => {
    testDb = await createTestDatabase();
  });
  afterAll(async () => {
    await testDb.drop();
  });

  function newChain(): string {
    chainCounter += 1;
    return `afip:chain-${chainCounter}`;
  }

  function event(chain: string, n: number, overrides: Partial<LockAuditInput> = {}): LockAuditInput {
    return {
      chain,
      lockKey: `jf:${chain}`,
      event: 'acquired',
      owner: 'worker-1',
      jobId: `job-${n}`,
      fencingToken: n,
      details: { n, ttlMs: 1000 },
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, n)),
      ...overrides,
    };
  }

  function rowsOf(chain: string) {
    return testDb.database.db.select().from(lockAudit).where(eq(lockAudit.chain, chain)).orderBy(asc(lockAudit.seq));
  }

  type StoredRow = Omit<typeof lockAudit.$inferSelect, 'id' | 'recordedAt'>;

  /** The hash a row should carry, computed here independently of the repository. */
  function hashOf(row: StoredRow): string {
    const text = canonicalTextOf(row);
    if (text === undefined) throw new Error('row has no canonical text');
    return createHash('sha256').update(row.prevHash + text).digest('hex');
  }

  /** The RFC 8785 text of a row's hashed fields. */
  function canonicalTextOf(row: StoredRow): string | undefined {
    const hashed = {
      chain: row.chain,
      seq: row.seq,
      lock_key: row.lockKey,
      event: row.event,
      owner: row.owner,
      tenant_id: row.tenantId,
      job_id: row.jobId,
      fencing_token: row.fencingToken,
      details: row.details,
      at: new Date(row.at).toISOString(),
      prev_hash: row.prevHash,
    };
    return canonicalize(hashed);
  }

  /** Runs raw SQL with the append-only triggers off, as someone with table-owner rights could. */
  async function tamper(statement: ReturnType<typeof sql>) {
    const { db } = testDb.database;
    await db.transaction(async (tx) => {
      await tx.execute(sql`alter table lock_audit disable trigger user`);
      await tx.execute(statement);
      await tx.execute(sql`alter table lock_audit enable trigger user`);
    });
  }

  it('numbers each chain 1..n from the genesis hash and links every row to the previous hash', async () => {
    const a = newChain();
    const b = newChain();
    await appendLockAuditEvents(testDb.database.db, [event(a, 1), event(b, 1), event(a, 2)]);
    await appendLockAuditEvents(testDb.database.db, [event(a, 3, { event: 'released', tenantId: 'acme' })]);
    const rows = await rowsOf(a);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(rows[0]?.prevHash).toBe(GENESIS_HASH);
    expect(rows[1]?.prevHash).toBe(rows[0]?.hash);
    expect(rows[2]).toMatchObject({ event: 'released', tenantId: 'acme', jobId: 'job-3', fencingToken: 3, prevHash: rows[1]?.hash });
    expect((await rowsOf(b)).map((r) => r.seq)).toEqual([1]);
    await expect(verifyLockAuditChains(testDb.database.db, { chain: a })).resolves.toEqual({ chains: 1, rows: 3, broken: [] });
  });

  it('hashes prev_hash followed by the canonical JSON of the row, with `at` as an ISO string in ms', async () => {
    const chain = newChain();
    await appendLockAuditEvents(testDb.database.db, [event(chain, 7)]);
    const [row] = await rowsOf(chain);
    expect(row).toMatchObject({ prevHash: GENESIS_HASH, hash: hashOf({ ...row!, at: '2026-01-01T00:00:00.007Z' }) });
  });

  it('keeps one chain gapless when several connections append to it at once', async () => {
    const chain = newChain();
    const pools = Array.from({ length: 4 }, () => openDatabase({ url: testDb.url, dataDir: '.data', poolMax: 3 }));
    try {
      await Promise.all(
        pools.flatMap((pool, p) =>
          Array.from({ length: 10 }, (_, i) =>
            appendLockAuditEvents(pool.db, [event(chain, p * 100 + i * 2), event(chain, p * 100 + i * 2 + 1)]),
          ),
        ),
      );
    } finally {
      await Promise.all(pools.map((pool) => pool.close()));
    }
    const rows = await rowsOf(chain);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    await expect(verifyLockAuditChains(testDb.database.db, { chain })).resolves.toEqual({ chains: 1, rows: 80, broken: [] });
  });

  it('refuses UPDATE, DELETE and TRUNCATE of audit rows', async () => {
    const chain = newChain();
    const { db } = testDb.database;
    await appendLockAuditEvents(db, [event(chain, 1)]);
    const refused = { cause: expect.objectContaining({ code: '42501', message: expect.stringMatching(/lock_audit is append-only \((UPDATE|DELETE|TRUNCATE) refused\)/) }) };
    await expect(db.update(lockAudit).set({ owner: 'mallory' }).where(eq(lockAudit.chain, chain))).rejects.toMatchObject(refused);
    await expect(db.delete(lockAudit).where(eq(lockAudit.chain, chain))).rejects.toMatchObject(refused);
    await expect(db.execute(sql`truncate lock_audit`)).rejects.toMatchObject(refused);
    expect(await rowsOf(chain)).toHaveLength(1);
  });

  it('reports an edited row as the first broken link of its chain, and only that chain', async () => {
    const chain = newChain();
    const intact = newChain();
    const { db } = testDb.database;
    await appendLockAuditEvents(db, [1, 2, 3, 4, 5].flatMap((n) => [event(chain, n), event(intact, n)]));
    const target = (await rowsOf(chain))[2]!;
    await tamper(sql`update lock_audit set details = '{"n": 3, "ttlMs": 999999}' where id = ${target.id}`);

    const result = await verifyLockAuditChains(db);
    expect(result.broken).toEqual([{ chain, seq: 3, id: target.id, reason: 'hash-mismatch' }]);
    await expect(verifyLockAuditChains(db, { chain: intact })).resolves.toEqual({ chains: 1, rows: 5, broken: [] });
  });

  it('catches a row rewritten with a recomputed hash at the next link', async () => {
    const chain = newChain();
    const { db } = testDb.database;
    await appendLockAuditEvents(db, [1, 2, 3].map((n) => event(chain, n)));
    const [, second, third] = await rowsOf(chain);
    const forged = { ...second!, owner: 'mallory' };
    await tamper(sql`update lock_audit set owner = ${forged.owner}, hash = ${hashOf(forged)} where id = ${second!.id}`);
    await expect(verifyLockAuditChains(db, { chain })).resolves.toMatchObject({
      broken: [{ chain, seq: 3, id: third!.id, reason: 'prev-hash-mismatch' }],
    });
  });

  it('reports a deleted row as a seq gap', async () => {
    const chain = newChain();
    const { db } = testDb.database;
    await appendLockAuditEvents(db, [1, 2, 3, 4].map((n) => event(chain, n)));
    const rows = await rowsOf(chain);
    await tamper(sql`delete from lock_audit where id = ${rows[1]!.id}`);
    await expect(verifyLockAuditChains(db, { chain })).resolves.toEqual({
      chains: 1,
      rows: 3,
      broken: [{ chain, seq: 3, id: rows[2]!.id, reason: 'seq-gap' }],
    });
  });

  // A chain as the hand-written canonicalJson (replaced by canonicalize) wrote it: the same bytes,
  // so rows from before the change keep verifying. Hashes computed with that implementation.
  const legacyChain = 'afip-wsaa:20123456786:wsfe';
  const legacyRows: StoredRow[] = [
    {
      chain: legacyChain,
      seq: 1,
      lockKey: `jf:lock:${legacyChain}`,
      event: 'acquired',
      owner: 'worker-7f3a',
      tenantId: 'acme',
      jobId: 'acme:inv-2026-0001',
      fencingToken: 9007199254740991,
      details: { ttlMs: 30000, waitMs: 2500, note: 'Señal "ok" \\ 中文 😀', attempts: [1, 2, { z: null, a: true }], empty: {} },
      at: '2026-03-14T15:09:26.535Z',
      prevHash: GENESIS_HASH,
      hash: 'ad5c756a317b5612ef7a1795e7e424d168bfbd7dea7cf41bdd6a9bdaf15080d9',
    },
    {
      chain: legacyChain,
      seq: 2,
      lockKey: `jf:lock:${legacyChain}`,
      event: 'released',
      owner: 'worker-7f3a',
      tenantId: null,
      jobId: null,
      fencingToken: null,
      details: {},
      at: '2026-03-14T15:09:27.001Z',
      prevHash: 'ad5c756a317b5612ef7a1795e7e424d168bfbd7dea7cf41bdd6a9bdaf15080d9',
      hash: '74b38da8e27f5d477800f2dc7332a2cddd065ebfa542f9131cc8049ef99ae803',
    },
  ];

  it('hashes a row as sha256(prev_hash || RFC 8785 text), byte for byte as before canonicalize', () => {
    const [first, second] = legacyRows;
    expect(canonicalTextOf(first!)).toBe(
      '{"at":"2026-03-14T15:09:26.535Z","chain":"afip-wsaa:20123456786:wsfe",' +
        '"details":{"attempts":[1,2,{"a":true,"z":null}],"empty":{},"note":"Señal \\"ok\\" \\\\ 中文 😀","ttlMs":30000,"waitMs":2500},' +
        '"event":"acquired","fencing_token":9007199254740991,"job_id":"acme:inv-2026-0001",' +
        '"lock_key":"jf:lock:afip-wsaa:20123456786:wsfe","owner":"worker-7f3a",' +
        '"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","seq":1,"tenant_id":"acme"}',
    );
    expect(hashOf(first!)).toBe(first!.hash);
    expect(hashOf(second!)).toBe(second!.hash);
  });

  it('verifies a chain written before canonicalize and extended after it, and still catches an edit to an old row', async () => {
    const { db } = testDb.database;
    await db.insert(lockAudit).values(legacyRows);
    await expect(verifyLockAuditChains(db, { chain: legacyChain })).resolves.toEqual({ chains: 1, rows: 2, broken: [] });

    await appendLockAuditEvents(db, [event(legacyChain, 3)]);
    const rows = await rowsOf(legacyChain);
    expect(rows[2]).toMatchObject({ seq: 3, prevHash: legacyRows[1]!.hash });
    await expect(verifyLockAuditChains(db, { chain: legacyChain })).resolves.toEqual({ chains: 1, rows: 3, broken: [] });

    await tamper(sql`update lock_audit set details = '{"ttlMs": 60000}' where id = ${rows[0]!.id}`);
    await expect(verifyLockAuditChains(db, { chain: legacyChain })).resolves.toMatchObject({
      broken: [{ chain: legacyChain, seq: 1, id: rows[0]!.id, reason: 'hash-mismatch' }],
    });
  });

  it('gives the same answer a page at a time as in one read, reporting each chain once', async () => {
    const { db } = testDb.database;
    const whole = await verifyLockAuditChains(db);
    const seen: string[] = [];
    const paged = await verifyLockAuditChains(db, { batchSize: 2, onChain: (c) => seen.push(c.chain) });
    expect(paged).toEqual(whole);
    expect(seen).toHaveLength(whole.chains);
    expect(new Set(seen).size).toBe(seen.length);
    expect(whole.broken.length).toBeGreaterThan(0);
  });
});
