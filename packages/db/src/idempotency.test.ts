import { and, eq, sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import {
  abandonIdempotentRequest,
  abandonIdempotentRequests,
  beginIdempotentRequest,
  beginIdempotentRequests,
  completeIdempotentRequest,
  completeIdempotentRequests,
  findIdempotencyRecordByJobId,
  type BeginIdempotentRequest,
} from './idempotency';
import { pruneExpiredIdempotencyKeys } from './retention';
import { idempotencyKeys } from './schema';
import { createTenant } from './tenants';

describe('idempotency keys', () => {
  let testDb: TestDatabase;
  let counter = 0;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    await createTenant(testDb.database.db, { id: 'acme', name: 'Acme' });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  function request(overrides: Partial<BeginIdempotentRequest> = {}): BeginIdempotentRequest {
    counter += 1;
    return {
      tenantId: 'acme',
      scope: 'calendar-sync',
      key: `key-${counter}`,
      requestHash: 'hash-a',
      jobId: `job-${counter}`,
      ttlSeconds: 3600,
      staleAfterSeconds: 60,
      ...overrides,
    };
  }

  /** Moves the row's clock back, as if it had been written `seconds` ago. */
  async function age(req: BeginIdempotentRequest, seconds: number, column: 'createdAt' | 'expiresAt') {
    await testDb.database.db
      .update(idempotencyKeys)
      .set({ [column]: sql`now() - make_interval(secs => ${seconds})` })
      .where(and(eq(idempotencyKeys.tenantId, req.tenantId), eq(idempotencyKeys.key, req.key)));
  }

  it('lets exactly one of 50 concurrent requests with one key through', async () => {
    const req = request();
    const outcomes = await Promise.all(Array.from({ length: 50 }, () => beginIdempotentRequest(testDb.database.db, req)));
    expect(outcomes.filter((o) => o.kind === 'new')).toHaveLength(1);
    expect(outcomes.filter((o) => o.kind === 'in-flight')).toHaveLength(49);
  });

  it('returns the first response when the same key is replayed', async () => {
    const { db } = testDb.database;
    const req = request();
    await expect(beginIdempotentRequest(db, req)).resolves.toEqual({ kind: 'new' });
    await expect(beginIdempotentRequest(db, req)).resolves.toEqual({ kind: 'in-flight' });
    await completeIdempotentRequest(db, { ...req, statusCode: 202, response: { jobId: req.jobId, nested: { a: [1, 2] } } });
    await expect(beginIdempotentRequest(db, req)).resolves.toEqual({
      kind: 'replay',
      statusCode: 202,
      response: { jobId: req.jobId, nested: { a: [1, 2] } },
    });
  });

  it('refuses the same key with another body, in flight or completed', async () => {
    const { db } = testDb.database;
    const req = request();
    await beginIdempotentRequest(db, req);
    await expect(beginIdempotentRequest(db, { ...req, requestHash: 'hash-b' })).resolves.toEqual({ kind: 'mismatch' });
    await completeIdempotentRequest(db, { ...req, statusCode: 202, response: {} });
    await expect(beginIdempotentRequest(db, { ...req, requestHash: 'hash-b' })).resolves.toEqual({ kind: 'mismatch' });
  });

  it('keeps keys apart per tenant and per scope', async () => {
    const { db } = testDb.database;
    await createTenant(db, { id: 'globex', name: 'Globex' });
    const req = request();
    await beginIdempotentRequest(db, req);
    await expect(beginIdempotentRequest(db, { ...req, tenantId: 'globex' })).resolves.toEqual({ kind: 'new' });
    await expect(beginIdempotentRequest(db, { ...req, scope: 'afip-sync' })).resolves.toEqual({ kind: 'new' });
  });

  it('lets one request take over an expired key, even with another body', async () => {
    const { db } = testDb.database;
    const req = request();
    await beginIdempotentRequest(db, req);
    await completeIdempotentRequest(db, { ...req, statusCode: 202, response: { old: true } });
    await age(req, 1, 'expiresAt');
    const next = { ...req, requestHash: 'hash-b' };
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => beginIdempotentRequest(db, next)));
    expect(outcomes.filter((o) => o.kind === 'new')).toHaveLength(1);
    expect(outcomes.filter((o) => o.kind === 'in-flight')).toHaveLength(19);
    const record = await findIdempotencyRecordByJobId(db, req.jobId);
    expect(record).toMatchObject({ requestHash: 'hash-b', statusCode: null, response: null });
    expect(record!.expiresAt.getTime()).toBeGreaterThan(Date.now() + 3000_000);
  });

  it('lets one request with the same body take over a stale in-flight key', async () => {
    const { db } = testDb.database;
    const req = request();
    await beginIdempotentRequest(db, req);
    await age(req, 30, 'createdAt');
    await expect(beginIdempotentRequest(db, req)).resolves.toEqual({ kind: 'in-flight' });
    await age(req, 61, 'createdAt');
    await expect(beginIdempotentRequest(db, { ...req, requestHash: 'hash-b' })).resolves.toEqual({ kind: 'mismatch' });
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => beginIdempotentRequest(db, req)));
    expect(outcomes.filter((o) => o.kind === 'new')).toHaveLength(1);
    expect(outcomes.filter((o) => o.kind === 'in-flight')).toHaveLength(19);
  });

  it('never takes over a completed key that has not expired, however old', async () => {
    const { db } = testDb.database;
    const req = request();
    await beginIdempotentRequest(db, req);
    await completeIdempotentRequest(db, { ...req, statusCode: 202, response: { first: true } });
    await age(req, 600, 'createdAt');
    await expect(beginIdempotentRequest(db, req)).resolves.toEqual({
      kind: 'replay',
      statusCode: 202,
      response: { first: true },
    });
  });

  it('abandoning an in-flight key lets the client retry, but never erases a completed one', async () => {
    const { db } = testDb.database;
    const req = request();
    await beginIdempotentRequest(db, req);
    await abandonIdempotentRequest(db, req);
    await expect(beginIdempotentRequest(db, req)).resolves.toEqual({ kind: 'new' });
    await completeIdempotentRequest(db, { ...req, statusCode: 202, response: { done: true } });
    await abandonIdempotentRequest(db, req);
    await expect(beginIdempotentRequest(db, req)).resolves.toMatchObject({ kind: 'replay' });
  });

  describe('in batches', () => {
    const batchOf = (requests: BeginIdempotentRequest[]) => ({ ttlSeconds: 3600, staleAfterSeconds: 60, requests });

    it('claims free keys, replays completed ones and refuses in-flight and other bodies, in the order asked', async () => {
      const { db } = testDb.database;
      const [done, busy, other, free, expired, stale] = Array.from({ length: 6 }, () => request());
      for (const req of [done!, busy!, other!, expired!, stale!]) await beginIdempotentRequest(db, req);
      await completeIdempotentRequest(db, { ...done!, statusCode: 202, response: { jobId: done!.jobId } });
      await completeIdempotentRequest(db, { ...expired!, statusCode: 202, response: { old: true } });
      await age(expired!, 1, 'expiresAt');
      await age(stale!, 61, 'createdAt');

      const asked = [free!, done!, busy!, { ...other!, requestHash: 'hash-b' }, { ...expired!, requestHash: 'hash-b', jobId: 'job-next' }, stale!];
      await expect(beginIdempotentRequests(db, batchOf(asked))).resolves.toEqual([
        { kind: 'new' },
        { kind: 'replay', statusCode: 202, response: { jobId: done!.jobId } },
        { kind: 'in-flight' },
        { kind: 'mismatch' },
        { kind: 'new' },
        { kind: 'new' },
      ]);
      // The expired key now belongs to the new body, unfinished.
      await expect(findIdempotencyRecordByJobId(db, 'job-next')).resolves.toMatchObject({ requestHash: 'hash-b', statusCode: null, response: null });
      await expect(beginIdempotentRequest(db, free!)).resolves.toEqual({ kind: 'in-flight' });
    });

    it('lets exactly one of concurrent overlapping batches claim each key', async () => {
      const { db } = testDb.database;
      const keys = Array.from({ length: 30 }, () => request());
      // Each batch asks for the keys in another order.
      const batches = Array.from({ length: 8 }, (_, n) => [...keys.slice(n * 3), ...keys.slice(0, n * 3)].reverse());
      const outcomes = await Promise.all(batches.map((requests) => beginIdempotentRequests(db, batchOf(requests))));
      for (const req of keys) {
        const kinds = batches.map((requests, n) => outcomes[n]![requests.indexOf(req)]!.kind);
        expect(kinds.filter((kind) => kind === 'new')).toHaveLength(1);
        expect(kinds.filter((kind) => kind === 'in-flight')).toHaveLength(7);
      }
    });

    it('completes and abandons many keys at once, never erasing a completed one', async () => {
      const { db } = testDb.database;
      const [a, b, c] = [request(), request(), request()];
      await beginIdempotentRequests(db, batchOf([a, b, c]));
      await completeIdempotentRequests(db, [{ ...a, statusCode: 202, response: { jobId: a.jobId, nested: [1, { x: null }] } }]);
      await abandonIdempotentRequests(db, [a, b]);
      await expect(beginIdempotentRequests(db, batchOf([a, b, c]))).resolves.toEqual([
        { kind: 'replay', statusCode: 202, response: { jobId: a.jobId, nested: [1, { x: null }] } },
        { kind: 'new' },
        { kind: 'in-flight' },
      ]);
    });
    it('claims the keys of several tenants and endpoints in one batch, each key apart from its namesakes', async () => {
      const { db } = testDb.database;
      await createTenant(db, { id: 'globex', name: 'Globex' });
      const mine = request({ key: 'shared-name' });
      const theirs = request({ key: 'shared-name', tenantId: 'globex' });
      const otherScope = request({ key: 'shared-name', scope: 'afip-sync' });
      await beginIdempotentRequest(db, mine);
      await completeIdempotentRequests(db, [{ ...mine, statusCode: 202, response: { mine: true } }]);
      await expect(beginIdempotentRequests(db, batchOf([theirs, { ...mine, requestHash: 'hash-b' }, otherScope]))).resolves.toEqual([
        { kind: 'new' },
        { kind: 'mismatch' },
        { kind: 'new' },
      ]);
      // Completing and abandoning touch exactly the rows named: Globex's key is freed, the other scope's stays.
      await abandonIdempotentRequests(db, [theirs, mine]);
      await expect(beginIdempotentRequests(db, batchOf([theirs, otherScope, mine]))).resolves.toEqual([
        { kind: 'new' },
        { kind: 'in-flight' },
        { kind: 'replay', statusCode: 202, response: { mine: true } },
      ]);
    });
  });

  it('finds the owner and scope of a job by its id', async () => {
    const { db } = testDb.database;
    const req = request();
    await beginIdempotentRequest(db, req);
    await expect(findIdempotencyRecordByJobId(db, req.jobId)).resolves.toMatchObject({
      tenantId: 'acme',
      scope: 'calendar-sync',
      key: req.key,
    });
    await expect(findIdempotencyRecordByJobId(db, 'no-such-job')).resolves.toBeUndefined();
  });

  it('prunes only expired keys, in batches, and counts them', async () => {
    const { db } = testDb.database;
    await pruneExpiredIdempotencyKeys(db, new Date(), 2);
    const expired = [request(), request(), request()];
    const live = request();
    for (const req of [...expired, live]) await beginIdempotentRequest(db, req);
    for (const req of expired) await age(req, 1, 'expiresAt');
    // Three expired keys in batches of two: a full batch, then the rest.
    await expect(pruneExpiredIdempotencyKeys(db, new Date(), 2)).resolves.toBe(3);
    await expect(findIdempotencyRecordByJobId(db, expired[0]!.jobId)).resolves.toBeUndefined();
    await expect(findIdempotencyRecordByJobId(db, live.jobId)).resolves.toBeDefined();
    // Two hours on, every key written by this file (TTL one hour) has expired.
    await expect(pruneExpiredIdempotencyKeys(db, new Date(Date.now() + 7200_000), 2)).resolves.toBeGreaterThan(0);
    await expect(findIdempotencyRecordByJobId(db, live.jobId)).resolves.toBeUndefined();
  });
});
