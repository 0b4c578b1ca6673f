import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { openDatabase, type Database } from './client';
import { jobRepository, recordAttempt, type JobIdentity } from './jobs';
import { syncStatusRepository } from './sync-status';
import type { StatementGuard } from './worker-rows';

describe('worker rows (sync_status and attempt history)', () => {
  let testDb: TestDatabase;
  // A second handle on the same database, counting the statements it sends.
  let counted: Database;
  let statements: string[];
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['t1'] });
    counted = openDatabase({ url: testDb.url, dataDir: '.data', onStatement: (query) => statements.push(query) });
  });
  beforeEach(() => {
    statements = [];
  });
  afterAll(async () => {
    await counted.close();
    await testDb.drop();
  });

  const entity = (entityId: string) => ({ tenantId: 't1', kind: 'reservation', entityId, version: 1, jobId: `job-${entityId}` });
  const identity = (id: string): JobIdentity => ({ kind: 'calendar-sync', id, tenantId: 't1', businessKey: id, idempotencyKey: `key-${id}`, createdAt: new Date() });
  const ended = (message: string) => ({ at: new Date(), outcome: 'failed' as const, error: { code: 'X', message } });

  it('writes the status rows and the history rows of jobs running at once in one statement', async () => {
    const { db } = counted;
    const outcomes = await Promise.all([
      syncStatusRepository.recordRunning(db, entity('one-running'), 1),
      syncStatusRepository.recordSynced(db, entity('one-synced'), 1, 'event-1'),
      recordAttempt(db, { job: identity('one-history'), run: 1, attempt: 1, workerId: 'w1', startedAt: new Date(), ended: ended('boom') }),
    ]);
    expect(outcomes).toEqual([true, true, undefined]);
    expect(statements).toHaveLength(1);
    expect(await syncStatusRepository.get(db, 't1', 'reservation', 'one-running')).toMatchObject({ status: 'running', attempts: 1 });
    expect(await syncStatusRepository.get(db, 't1', 'reservation', 'one-synced')).toMatchObject({ status: 'synced', externalRef: 'event-1' });
    expect(await jobRepository.get(db, 'calendar-sync', 'one-history')).toMatchObject({ state: 'failed', lastError: { code: 'X', message: 'boom' } });
  });

  it('keeps the last error while the entity runs again, and sets the external ref only when synced', async () => {
    const { db } = counted;
    const error = { name: 'Error', code: 'X', message: 'first try', at: new Date().toISOString() };
    await syncStatusRepository.recordFailure(db, entity('again'), 1, error, false);
    await syncStatusRepository.recordRunning(db, entity('again'), 2);
    expect(await syncStatusRepository.get(db, 't1', 'reservation', 'again')).toMatchObject({ status: 'running', attempts: 2, lastError: error, externalRef: null, lastSyncedAt: null });
    await syncStatusRepository.recordSynced(db, entity('again'), 2, 'event-2');
    expect(await syncStatusRepository.get(db, 't1', 'reservation', 'again')).toMatchObject({ status: 'synced', lastError: null, externalRef: 'event-2' });
  });

  it('stores text as given, quotes, backslashes, braces, JSON-like text and non-ASCII included; a lone surrogate as U+FFFD', async () => {
    const { db } = counted;
    const awkward = 'a "quoted" \\ back{slash}, {"not": "json"}, [1,2], ñandú, 日本, 🙂';
    const id = `awkward-${awkward}`;
    await Promise.all([
      syncStatusRepository.recordSynced(db, entity(id), 1, awkward),
      recordAttempt(db, { job: identity(id), run: 1, attempt: 1, workerId: 'w1', startedAt: new Date(), ended: ended(`${awkward} cut \ud83d`) }),
    ]);
    expect(await syncStatusRepository.get(db, 't1', 'reservation', id)).toMatchObject({ entityId: id, jobId: `job-${id}`, externalRef: awkward });
    expect(await jobRepository.attempts(db, 'calendar-sync', id)).toEqual([expect.objectContaining({ errorMessage: `${awkward} cut \ufffd` })]);
  });

  it('fails only the row Postgres refuses: the other rows of its flush are written', async () => {
    const { db } = counted;
    // Postgres text cannot hold NUL: this history row is refused for what it holds.
    const [running, history] = await Promise.allSettled([
      syncStatusRepository.recordRunning(db, entity('beside-refused'), 1),
      recordAttempt(db, { job: identity('refused'), run: 1, attempt: 1, workerId: 'w1', startedAt: new Date(), ended: ended('nul \u0000 inside') }),
    ]);
    expect(running).toEqual({ status: 'fulfilled', value: true });
    expect(history.status).toBe('rejected');
    expect(await syncStatusRepository.get(db, 't1', 'reservation', 'beside-refused')).toMatchObject({ status: 'running' });
    expect(await jobRepository.get(db, 'calendar-sync', 'refused')).toBeUndefined();
  });

  it('fails every caller of a flush that fails, status and history alike', async () => {
    const closed = openDatabase({ url: testDb.url, dataDir: '.data' });
    await closed.close();
    const results = await Promise.allSettled([
      syncStatusRepository.recordRunning(closed.db, entity('never-written'), 1),
      recordAttempt(closed.db, { job: identity('never-written'), run: 1, attempt: 1, workerId: 'w1', startedAt: new Date() }),
    ]);
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
    expect(await syncStatusRepository.get(testDb.database.db, 't1', 'reservation', 'never-written')).toBeUndefined();
  });

  it('runs each flush through its guard once, whatever the number of rows, and gives every caller what the guard throws', async () => {
    const { db } = counted;
    const operations: string[] = [];
    const counting: StatementGuard = {
      call(operation, statement) {
        operations.push(operation);
        return statement();
      },
    };
    const outcomes = await Promise.all([
      syncStatusRepository.recordRunning(db, entity('guarded-running'), 1, counting),
      syncStatusRepository.recordSynced(db, entity('guarded-synced'), 1, 'event-g', counting),
      recordAttempt(db, { job: identity('guarded-history'), run: 1, attempt: 1, workerId: 'w1', startedAt: new Date() }, counting),
    ]);
    expect(outcomes).toEqual([true, true, undefined]);
    expect(operations).toEqual(['writeWorkerRows']);
    expect(statements).toHaveLength(1);

    const refusal = new Error('circuit open');
    const refusing: StatementGuard = { call: () => Promise.reject(refusal) };
    const results = await Promise.allSettled([
      syncStatusRepository.recordRunning(db, entity('guard-refused'), 1, refusing),
      recordAttempt(db, { job: identity('guard-refused'), run: 1, attempt: 1, workerId: 'w1', startedAt: new Date() }, refusing),
    ]);
    expect(results).toEqual([
      { status: 'rejected', reason: refusal },
      { status: 'rejected', reason: refusal },
    ]);
    expect(statements).toHaveLength(1);
    expect(await syncStatusRepository.get(db, 't1', 'reservation', 'guard-refused')).toBeUndefined();
  });
});
