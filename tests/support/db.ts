import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createTenant, openDatabase, type Database } from '@jobfleet/db';
import { ADMIN_DATABASE_URL, TEMPLATE_DB_ENV, databaseUrl } from './env';

export interface TestDatabase {
  /** Connection string of this file's own database (pass it as DATABASE_URL to child processes). */
  url: string;
  database: Database;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A fresh, migrated database cloned from the run's template, with the named tenants created. */
export async function createTestDatabase(options: { tenants?: readonly string[] } = {}): Promise<TestDatabase> {
  const template = process.env[TEMPLATE_DB_ENV];
  if (!template) throw new Error(`${TEMPLATE_DB_ENV} is not set: run tests through jest (global setup)`);
  const name = `jobfleet_t_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`create database ${name} template ${template}`));
  const url = databaseUrl(name);
  const database = openDatabase({ url, dataDir: '.data', poolMax: 20 });
  for (const id of options.tenants ?? []) await createTenant(database.db, { id, name: id });
  return {
    url,
    database,
    async drop() {
      // A test may already have closed the pool on purpose.
      await database.close().catch(() => undefined);
      await admin((c) => c.query(`drop database if exists ${name} with (force)`));
    },
  };
}
