import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { executePrepared, jsonRows } from './bulk-sql';
import { openDatabase, type Database } from './client';

describe('executePrepared', () => {
  let testDb: TestDatabase;
  // One connection, so every call below meets the statements the earlier ones prepared.
  let single: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    single = openDatabase({ url: testDb.url, dataDir: '.data', poolMax: 1 });
  });
  afterAll(async () => {
    await single.close();
    await testDb.drop();
  });

  const doubled = (rows: readonly object[]) => sql`select n * 2 as "n" from json_to_recordset(${jsonRows(rows)}) as row (n integer) order by n`;
  const tripled = (rows: readonly object[]) => sql`select n * 3 as "n" from json_to_recordset(${jsonRows(rows)}) as row (n integer) order by n`;

  it('prepares a statement once per connection and runs it again with new parameters', async () => {
    await expect(executePrepared(single.db, doubled([{ n: 1 }, { n: 2 }]))).resolves.toEqual([{ n: 2 }, { n: 4 }]);
    await expect(executePrepared(single.db, doubled([{ n: 5 }]))).resolves.toEqual([{ n: 10 }]);
    const prepared = await single.rows<{ name: string; statement: string }>(sql`select name, statement from pg_prepared_statements where name like 'jobfleet_%'`);
    expect(prepared).toHaveLength(1);
    expect(prepared[0]?.statement).toContain('n * 2');
  });

  it('gives another text another name, so two statements live side by side on one connection', async () => {
    await expect(executePrepared(single.db, tripled([{ n: 2 }]))).resolves.toEqual([{ n: 6 }]);
    await expect(executePrepared(single.db, doubled([{ n: 3 }]))).resolves.toEqual([{ n: 6 }]);
    const names = await single.rows<{ name: string }>(sql`select name from pg_prepared_statements where name like 'jobfleet_%'`);
    expect(new Set(names.map((row) => row.name)).size).toBe(2);
  });

  it('sends a refused statement back as an error and leaves the connection usable', async () => {
    const refused = sql`select ${'not a number'}::integer as "n"`;
    // drizzle wraps the driver's error, as it does for db.execute: the Postgres code is its cause's.
    await expect(executePrepared(single.db, refused)).rejects.toMatchObject({ cause: { code: '22P02' } });
    await expect(executePrepared(single.db, doubled([{ n: 4 }]))).resolves.toEqual([{ n: 8 }]);
  });
});
