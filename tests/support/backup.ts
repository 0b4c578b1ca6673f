import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createApiKey, type Db } from '@jobfleet/db';
import { ADMIN_DATABASE_URL } from './env';

/** Runs `work` with a client of `url`, always closing it. */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Two tables with known row counts, the data a backup test checks a restore against. */
export async function seedBackupSource(url: string, rows: { customers: number; orders: number }): Promise<void> {
  await withClient(url, async (c) => {
    await c.query('create table customers (id int primary key, name text not null)');
    await c.query('create table orders (id int primary key, customer_id int not null references customers, total numeric(12,2) not null)');
    await c.query(`insert into customers select g, 'customer ' || g from generate_series(1, ${rows.customers}) g`);
    await c.query(`insert into orders select g, 1 + g % ${rows.customers}, g * 1.5 from generate_series(1, ${rows.orders}) g`);
  });
}

export async function countRows(url: string, tables: readonly string[]): Promise<Record<string, number>> {
  return withClient(url, async (c) => {
    const counts: Record<string, number> = {};
    for (const table of tables) counts[table] = Number((await c.query<{ n: string }>(`select count(*) as n from ${table}`)).rows[0]?.n);
    return counts;
  });
}

/** An empty database straight from template0 (no jobfleet tables), dropped by the returned function. */
export async function createEmptyDatabase(name: string): Promise<{ url: string; drop(): Promise<void> }> {
  await withClient(ADMIN_DATABASE_URL, (c) => c.query(`create database ${name} template template0`));
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => withClient(ADMIN_DATABASE_URL, (c) => c.query(`drop database if exists ${name} with (force)`)).then(() => undefined),
  };
}

export const backupDirectory = (): Promise<string> => mkdtemp(join(tmpdir(), 'jobfleet-backups-'));

/** An operator key (fleet:admin: backups span every tenant), issued under the tenant. */
export async function createOperatorKey(db: Db, tenantId: string): Promise<string> {
  return (await createApiKey(db, { tenantId, name: 'ops', scopes: ['fleet:admin', 'jobs:read'] })).key;
}
