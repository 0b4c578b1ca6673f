import { hash } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import { PgDialect, type AnyPgColumn } from 'drizzle-orm/pg-core';
import type { Db } from './client';

// Bulk statements pass their rows as few parameters instead of several per row, which drizzle
// builds and Postgres plans several times faster (500 rows: ~20 ms against ~120 ms as a multi-row
// VALUES): the hot paths (the worker's rows, the API's idempotency keys and job rows) as one JSON
// parameter per table (jsonRows), the rest as one array per column (arrayParam, read with unnest()).

export type ArrayType = 'text' | 'bigint' | 'integer' | 'timestamptz';

/** `values` as one parameter of SQL type `type[]` (null elements stay NULL; timestamps as ISO strings). */
export const arrayParam = (values: readonly (string | number | null)[], type: ArrayType): SQL => sql`${sql.param(values)}::${sql.raw(type)}[]`;

/**
 * A text column's value as Postgres stores it: a lone surrogate (half of a UTF-16 pair, e.g. from
 * a cut error message) becomes U+FFFD, as the driver's UTF-8 encoding of a text parameter would
 * make it; inside JSON it would be an escape Postgres refuses.
 */
export const storedText = (value: string | null): string | null => value?.toWellFormed() ?? null;

/**
 * Rows as one JSON parameter, read back with json_to_recordset: a statement of a fixed text and
 * one parameter per table. Per-column arrays cost the query builder and the driver work per
 * parameter and per element (pg escapes each), which at one flush per tick was a tenth of a busy
 * worker's CPU. Text values go through storedText.
 */
export const jsonRows = (rows: readonly object[]): SQL => sql`${JSON.stringify(rows)}::json`;

const dialect = new PgDialect();

/**
 * Runs a statement as a named prepared statement, so that each connection parses and plans it
 * once instead of at every call: for the hot statements, whose text is fixed (their rows are JSON
 * parameters). At 36 rows the worker's flush cost Postgres 3.4 ms of CPU unnamed, 2.5 ms named.
 * The name is derived from the text, so two texts never share one (node-postgres refuses that);
 * a statement whose text varies with its input would leave a prepared statement per variant on
 * every connection, so it does not belong here. PGlite ignores the name.
 */
export async function executePrepared<T>(db: Db, statement: SQL): Promise<T[]> {
  const query = dialect.sqlToQuery(statement);
  const name = `jobfleet_${hash('sha1', query.sql, 'hex').slice(0, 24)}`;
  const result = (await db._.session.prepareQuery(query, undefined, name, false).execute()) as { rows: T[] };
  return result.rows;
}

/** A column's bare name, as INSERT column lists and UPDATE's SET take it. */
export const columnName = (column: AnyPgColumn) => sql.identifier(column.name);

/**
 * `items` sorted by `key`, each key computed once. Bulk statements write their rows in key order,
 * so that two statements writing the same rows (a worker's and an acceptor's, two workers') lock
 * them in one order and never deadlock.
 */
export function inKeyOrder<T>(items: readonly T[], key: (item: T) => string): T[] {
  return items
    .map((item) => ({ item, key: key(item) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map(({ item }) => item);
}
