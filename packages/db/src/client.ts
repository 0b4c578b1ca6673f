import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql, type SQL } from 'drizzle-orm';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import * as schema from './schema';

export type Schema = typeof schema;
/** The drizzle handle every repository takes; the same type for node-postgres and PGlite. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export interface DatabaseOptions {
  /** Postgres connection string; undefined selects embedded PGlite under `dataDir`. */
  url: string | undefined;
  dataDir: string;
  poolMax?: number;
  /** Called for errors on idle pool clients (a restarted server), which must not crash the process. */
  onPoolError?: (error: Error) => void;
  /** Called for each statement the query builder sends, with its text: the bench counts statements per job with it. */
  onStatement?: (query: string) => void;
}

export interface Database {
  db: Db;
  dialect: 'postgres' | 'pglite';
  /** Applies the committed SQL migrations (serialised across processes by an advisory lock). */
  migrate(): Promise<void>;
  /** Raw SQL returning rows; both drivers answer `{ rows }`. Prefer the query builder. */
  rows<T extends Record<string, unknown>>(query: SQL): Promise<T[]>;
  /** `select 1` bounded by `timeoutMs`; rejects on timeout or error. */
  ping(timeoutMs: number): Promise<void>;
  /** The pool's connections now (pg's own counters, read for metrics); undefined for PGlite, which has none. */
  poolStats(): PoolStats | undefined;
  close(): Promise<void>;
}

export interface PoolStats {
  /** Connections open, in use or idle. */
  totalCount: number;
  idleCount: number;
  /** Queries waiting for a connection because all `max` are in use. */
  waitingCount: number;
  max: number;
}

// One literal URL, which the production build (scripts/build.ts) rewrites to its copy beside the bundle.
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations', import.meta.url));
// Any constant shared by every jobfleet process; serialises migrations during a rolling deploy.
const MIGRATION_LOCK_ID = 7_415_002_001;

export function openDatabase(options: DatabaseOptions): Database {
  const { url } = options;
  return url === undefined ? openPglite(options.dataDir) : openPostgres({ ...options, url });
}

/**
 * What a long-running process opens: idle-connection errors (a restarted server) are logged, not
 * fatal, and migrations are applied (advisory-locked, so replicas starting together apply each once).
 */
export async function openMigratedDatabase(
  options: Omit<DatabaseOptions, 'onPoolError'>,
  logger: { warn(details: object, message: string): void },
): Promise<Database> {
  const database = openDatabase({ ...options, onPoolError: (err) => logger.warn({ err }, 'idle Postgres connection failed') });
  await database.migrate();
  return database;
}

function openPostgres(options: DatabaseOptions & { url: string }): Database {
  const max = options.poolMax ?? 10;
  const pool = new pg.Pool({
    connectionString: options.url,
    max,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', (error) => options.onPoolError?.(error));
  // The pool listens for errors on idle clients only. A checked-out client (a transaction's, held
  // between its statements) whose socket breaks emits 'error' too, and without a listener that
  // kills the process. Its statement or transaction fails with the error anyway, and the pool
  // drops the broken client when it is released, so there is nothing more to do here.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const { onStatement } = options;
  const db = drizzlePg(pool, { schema, ...(onStatement === undefined ? {} : { logger: { logQuery: (query) => onStatement(query) } }) });
  return {
    db,
    dialect: 'postgres',
    rows: (query) => rowsOf(db, query),
    async migrate() {
      const client = await pool.connect();
      try {
        await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
        try {
          await migratePg(drizzlePg(client, { schema }), { migrationsFolder: MIGRATIONS_DIR });
        } finally {
          await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
        }
      } finally {
        client.release();
      }
    },
    ping: (timeoutMs) => withTimeout(pool.query('select 1').then(() => undefined), timeoutMs, 'postgres ping'),
    poolStats: () => ({ totalCount: pool.totalCount, idleCount: pool.idleCount, waitingCount: pool.waitingCount, max }),
    close: () => pool.end(),
  };
}

function openPglite(dataDir: string): Database {
  const dir = resolve(dataDir, 'pglite');
  mkdirSync(dir, { recursive: true });
  const client = new PGlite(dir);
  const db = drizzlePglite(client, { schema });
  return {
    db,
    dialect: 'pglite',
    rows: (query) => rowsOf(db, query),
    // PGlite is single-process, so no lock is needed.
    migrate: () => migratePglite(db, { migrationsFolder: MIGRATIONS_DIR }),
    ping: (timeoutMs) => withTimeout(db.execute(sql`select 1`).then(() => undefined), timeoutMs, 'pglite ping'),
    poolStats: () => undefined,
    close: () => client.close(),
  };
}

/** The rows of a raw statement, typed as the caller says they are. */
export async function rowsOf<T>(db: Db, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as { rows: T[] };
  return result.rows;
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
