import { randomBytes } from 'node:crypto';
import { openDatabase, type Db } from '@jobfleet/db';
import pg from 'pg';

export interface BenchDatabase {
  url: string;
  /** Drops the database (every connection to it closed by force). */
  drop(): Promise<void>;
}

/**
 * A migrated database of its own for one bench run, created through `adminUrl`, with whatever
 * `seed` adds (tenants, their connections).
 */
export async function createBenchDatabase(adminUrl: string, seed: (db: Db) => Promise<void>): Promise<BenchDatabase> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const name = `jobfleet_bench_${randomBytes(4).toString('hex')}`;
  await admin.query(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const drop = async () => {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  };
  try {
    const setup = openDatabase({ url: url.toString(), dataDir: '.' });
    await setup.migrate();
    await seed(setup.db);
    await setup.close();
  } catch (error) {
    await drop();
    throw error;
  }
  return { url: url.toString(), drop };
}
