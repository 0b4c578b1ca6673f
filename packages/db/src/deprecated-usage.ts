import { sql } from 'drizzle-orm';
import { arrayParam, inKeyOrder } from './bulk-sql';
import type { Db } from './client';
import { apiDeprecatedUsage, apiKeys } from './schema';

/** Calls of one key to one deprecated route on one UTC day, as counted by an API process. */
export interface DeprecatedUsageCount {
  keyId: string;
  tenantId: string;
  /** "<METHOD> <route pattern>". */
  route: string;
  /** YYYY-MM-DD, UTC. */
  day: string;
  count: number;
  lastSeen: Date;
}

/** A key's calls to one deprecated route over the days asked for, with what tells the key apart. */
export interface DeprecatedUsageRow {
  keyId: string;
  tenantId: string;
  keyName: string;
  keyPrefix: string;
  keyRevokedAt: Date | null;
  route: string;
  count: number;
  lastSeen: Date;
}

/** Days of counts kept (and the longest window they are read over): a year, every day of it. */
export const DEPRECATED_USAGE_DAYS = 366;

const orderKey = (c: DeprecatedUsageCount) => JSON.stringify([c.keyId, c.route, c.day]);

export const deprecatedUsageRepository = {
  /**
   * Adds the counts to the stored ones, in one statement. Counts of a key deleted since are
   * dropped (the key is gone, and so is its history).
   */
  async add(db: Db, unordered: readonly DeprecatedUsageCount[]): Promise<void> {
    if (unordered.length === 0) return;
    // In key order, so that two replicas' flushes lock shared rows in one order and never deadlock.
    const counts = inKeyOrder(unordered, orderKey);
    const column = (value: (count: DeprecatedUsageCount) => string | number, type: 'text' | 'bigint' | 'timestamptz') => arrayParam(counts.map(value), type);
    await db.execute(sql`
      insert into ${apiDeprecatedUsage} as stored (key_id, tenant_id, route, day, count, last_seen)
      select row.key_id, row.tenant_id, row.route, row.day::date, row.count, row.last_seen
      from unnest(${column((c) => c.keyId, 'text')}, ${column((c) => c.tenantId, 'text')}, ${column((c) => c.route, 'text')},
        ${column((c) => c.day, 'text')}, ${column((c) => c.count, 'bigint')}, ${column((c) => c.lastSeen.toISOString(), 'timestamptz')})
        as row (key_id, tenant_id, route, day, count, last_seen)
      join ${apiKeys} on ${apiKeys.id} = row.key_id
      on conflict (key_id, route, day) do update
        set count = stored.count + excluded.count, last_seen = greatest(stored.last_seen, excluded.last_seen)
    `);
  },

  /** Per key and route, the calls since `sinceDay` (YYYY-MM-DD, UTC) included; keys last seen most recently first. */
  async list(db: Db, { sinceDay }: { sinceDay: string }): Promise<DeprecatedUsageRow[]> {
    const result = (await db.execute(sql`
      select u.key_id as "keyId", k.tenant_id as "tenantId", k.name as "keyName", k.key_prefix as "keyPrefix", k.revoked_at as "keyRevokedAt",
        u.route, sum(u.count)::bigint as count, max(u.last_seen) as "lastSeen"
      from ${apiDeprecatedUsage} u join ${apiKeys} k on k.id = u.key_id
      where u.day >= ${sinceDay}::date
      group by u.key_id, k.tenant_id, k.name, k.key_prefix, k.revoked_at, u.route
      order by max(max(u.last_seen)) over (partition by u.key_id) desc, u.key_id, count desc, u.route
    `)) as { rows: (Omit<DeprecatedUsageRow, 'count' | 'lastSeen' | 'keyRevokedAt'> & { count: string | number; lastSeen: string | Date; keyRevokedAt: string | Date | null })[] };
    return result.rows.map((row) => ({
      ...row,
      count: Number(row.count),
      lastSeen: new Date(row.lastSeen),
      keyRevokedAt: row.keyRevokedAt === null ? null : new Date(row.keyRevokedAt),
    }));
  },
};
