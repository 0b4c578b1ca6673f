import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { DependencyUnavailableError } from '@jobfleet/contracts';
import { openDatabase } from './client';
import { classifyPostgresError, isUnreachablePostgresQuery, postgresRefusal, retryLostRaces } from './postgres-errors';
import { tenants } from './schema';

describe('Postgres errors', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['t1'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  /** What a statement threw, as drizzle hands it to the caller (wrapping pg's error). */
  const thrownBy = async (statement: () => Promise<unknown>): Promise<Error> => {
    try {
      await statement();
    } catch (error) {
      return error as Error;
    }
    throw new Error('the statement did not fail');
  };

  it('classifies what drizzle throws for a refused statement as a bug, by the SQLSTATE in its cause', async () => {
    const duplicate = await thrownBy(() => testDb.database.db.insert(tenants).values({ id: 't1', name: 'again' }));
    expect(duplicate.message).toMatch(/^Failed query: insert into "tenants"/);
    expect(classifyPostgresError(duplicate)).toBe('bug');
    const raised = await thrownBy(() => testDb.database.db.execute(sql.raw(`do $$ begin raise exception 'no' using errcode = '22023'; end $$`)));
    expect(classifyPostgresError(raised)).toBe('bug');
  });

  it('classifies by SQLSTATE class: unavailable, transient, bug; and no SQLSTATE as other', () => {
    const pg = (code: string) => new Error('wrapped', { cause: Object.assign(new Error(`pg ${code}`), { code }) });
    expect(['08006', '53300', '57P01', '58030'].map((code) => classifyPostgresError(pg(code)))).toEqual(['unavailable', 'unavailable', 'unavailable', 'unavailable']);
    expect(['40001', '40P01', '55P03'].map((code) => classifyPostgresError(pg(code)))).toEqual(['transient', 'transient', 'transient']);
    expect(['23505', '22023', '42601'].map((code) => classifyPostgresError(pg(code)))).toEqual(['bug', 'bug', 'bug']);
    expect(classifyPostgresError(new Error('Connection terminated unexpectedly'))).toBe('unavailable');
    expect(classifyPostgresError(new Error('boom'))).toBe('other');
  });

  it('tells a query that could not reach Postgres from a refused one and from a typed error made of one', async () => {
    // Nothing listens on port 1: the pool cannot connect.
    const nowhere = openDatabase({ url: 'postgres://postgres@127.0.0.1:1/postgres', dataDir: '.data', poolMax: 1 });
    try {
      const unreachable = await thrownBy(() => nowhere.db.execute(sql`select 1`));
      expect(isUnreachablePostgresQuery(unreachable)).toBe(true);
      // The typed error a guard makes of it is decided by its own class.
      expect(isUnreachablePostgresQuery(new DependencyUnavailableError('postgres', 'down', { cause: unreachable }))).toBe(false);
    } finally {
      await nowhere.close();
    }
    const refused = await thrownBy(() => testDb.database.db.insert(tenants).values({ id: 't1', name: 'again' }));
    expect(isUnreachablePostgresQuery(refused)).toBe(false);
    expect(isUnreachablePostgresQuery(new Error('Connection terminated unexpectedly'))).toBe(false);
  });

  it('describes a refused statement by the server’s reason and SQLSTATE, not by the SQL text and its parameters', async () => {
    const duplicate = await thrownBy(() => testDb.database.db.insert(tenants).values({ id: 't1', name: 'again' }));
    const refusal = postgresRefusal(duplicate);
    expect(refusal).toMatchObject({
      name: 'PermanentError',
      code: 'POSTGRES_REFUSED',
      retryable: false,
      message: expect.stringMatching(/^Postgres refused the statement: duplicate key value violates unique constraint "tenants_pkey" \(SQLSTATE 23505\)$/),
      details: { sqlstate: '23505', table: 'tenants', constraint: 'tenants_pkey' },
    });
    expect(refusal?.cause).toBe(duplicate);
    expect(refusal?.message).not.toContain('again');
  });

  it('describes nothing but refusals: an outage, a lost race or a non-Postgres error stays as it is', () => {
    const pg = (code: string) => new Error('wrapped', { cause: Object.assign(new Error(`pg ${code}`), { code }) });
    expect(postgresRefusal(pg('57P01'))).toBeUndefined();
    expect(postgresRefusal(pg('40001'))).toBeUndefined();
    expect(postgresRefusal(new Error('boom'))).toBeUndefined();
  });

  it('runs a statement again after a lost race, and not after a statement Postgres refuses', async () => {
    let calls = 0;
    const deadlock = Object.assign(new Error('deadlock detected'), { code: '40P01' });
    await expect(retryLostRaces(() => (++calls < 3 ? Promise.reject(deadlock) : Promise.resolve('done')))).resolves.toBe('done');
    expect(calls).toBe(3);

    calls = 0;
    const refused = Object.assign(new Error('duplicate key'), { code: '23505' });
    await expect(retryLostRaces(() => (++calls, Promise.reject(refused)))).rejects.toBe(refused);
    expect(calls).toBe(1);
  });
});
