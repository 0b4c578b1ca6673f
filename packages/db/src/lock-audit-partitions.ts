import canonicalize from 'canonicalize';
import { sql } from 'drizzle-orm';
import { signRecord, type Keyring } from '@jobfleet/secrets';
import { rowsOf, type Db } from './client';
import { lockAuditCheckpoints } from './schema';

/** The signatures of checkpoints prove this and nothing else. */
export const CHECKPOINT_PURPOSE = 'lock-audit checkpoint';

/** The signed text of a checkpoint: its RFC 8785 JSON, cut as an ISO instant. */
export function checkpointText(checkpoint: { chain: string; seq: number; hash: string; cutAt: Date }): string {
  const text = canonicalize({ chain: checkpoint.chain, seq: checkpoint.seq, hash: checkpoint.hash, cutAt: checkpoint.cutAt.toISOString() });
  if (text === undefined) throw new TypeError('a checkpoint has no JSON text');
  return text;
}

async function partitionExists(db: Db, name: string): Promise<boolean> {
  const [found] = await rowsOf<{ exists: boolean }>(db, sql`select to_regclass(${name}) is not null as exists`);
  return found?.exists === true;
}

const PARTITION_NAME = /^lock_audit_(\d{4})_(\d{2})$/;

const monthStart = (year: number, monthIndex: number) => new Date(Date.UTC(year, monthIndex, 1));
const partitionName = (month: Date) => `lock_audit_${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`;

/**
 * Creates the month partitions of lock_audit from this month to `monthsAhead` months ahead (the
 * retention pass keeps doing it, so rows seldom land in the default partition). Idempotent.
 *
 * Postgres refuses a partition for a range the default partition holds rows of (after a long gap
 * without passes): then, in one transaction, the default is detached, the month created, its rows
 * moved into it, and the default attached again.
 */
export async function ensureLockAuditPartitions(db: Db, options: { now: Date; monthsAhead: number }): Promise<string[]> {
  const created: string[] = [];
  for (let ahead = 0; ahead <= options.monthsAhead; ahead += 1) {
    const from = monthStart(options.now.getUTCFullYear(), options.now.getUTCMonth() + ahead);
    const to = monthStart(from.getUTCFullYear(), from.getUTCMonth() + 1);
    const name = partitionName(from);
    if (await partitionExists(db, name)) continue;
    const inRange = sql`recorded_at >= ${from} and recorded_at < ${to}`;
    const create = sql.raw(`create table if not exists "${name}" partition of lock_audit for values from ('${from.toISOString()}') to ('${to.toISOString()}')`);
    await db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended('jobfleet lock_audit partitions', 0))`);
      const [stranded] = await rowsOf<{ found: boolean }>(tx, sql`select exists (select 1 from lock_audit_default where ${inRange}) as found`);
      if (!stranded?.found) {
        await tx.execute(create);
        return;
      }
      await tx.execute(sql`alter table lock_audit detach partition lock_audit_default`);
      await tx.execute(create);
      await tx.execute(sql`insert into lock_audit select * from lock_audit_default where ${inRange}`);
      // Detached, the default has none of lock_audit's triggers; these rows now live in the month.
      await tx.execute(sql`delete from lock_audit_default where ${inRange}`);
      await tx.execute(sql`alter table lock_audit attach partition lock_audit_default default`);
    });
    created.push(name);
  }
  return created;
}

/** A month partition of lock_audit and the instant its rows end. */
interface MonthPartition {
  name: string;
  end: Date;
}

async function monthPartitions(db: Db): Promise<MonthPartition[]> {
  const rows = await rowsOf<{ name: string }>(
    db,
    sql`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'lock_audit'::regclass`,
  );
  return rows
    .flatMap(({ name }) => {
      const match = PARTITION_NAME.exec(name);
      return match ? [{ name, end: monthStart(Number(match[1]), Number(match[2])) }] : [];
    })
    .sort((a, b) => a.end.getTime() - b.end.getTime());
}

/** Raised instead of dropping a month that does not hold a prefix of every chain in it. */
export class LockAuditRetentionError extends Error {
  override readonly name = 'LockAuditRetentionError';
}

export interface DroppedMonth {
  partition: string;
  /** Rows recorded before this instant are gone. */
  cutAt: Date;
  /** Chains whose head at the cut was checkpointed. */
  checkpoints: number;
}

/**
 * Drops, oldest first, each whole month partition of lock_audit that ended at or before `before`.
 * In one short transaction per month: the head (last seq and hash) of every chain in it is written
 * to lock_audit_checkpoints, signed with the keyring, then the partition is detached and dropped.
 * The verifier then starts each chain from its checkpoint, so the rows kept stay provable. Runs
 * of several processes are serialised by an advisory lock.
 */
export async function dropLockAuditMonthsBefore(db: Db, options: { before: Date; keyring: Keyring }): Promise<DroppedMonth[]> {
  const dropped: DroppedMonth[] = [];
  for (const partition of await monthPartitions(db)) {
    if (partition.end > options.before) break;
    const checkpoints = await db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended('jobfleet lock_audit retention', 0))`);
      const table = sql.identifier(partition.name);
      // Another run may have dropped it while this one waited.
      if (!(await partitionExists(tx, partition.name))) return undefined;
      // recorded_at only grows along a chain, so a month holds the start of each of its chains;
      // should a clock have gone back, dropping the month would cut a chain in the middle.
      const [interleaved] = await rowsOf<{ chain: string }>(
        tx,
        sql`select p.chain from ${table} p
          where exists (select 1 from lock_audit l where l.chain = p.chain and l.seq < p.seq and l.tableoid <> ${partition.name}::regclass)
          limit 1`,
      );
      if (interleaved) throw new LockAuditRetentionError(`${partition.name} is not the start of chain ${interleaved.chain}: kept`);
      const heads = await rowsOf<{ chain: string; seq: string | number; hash: string }>(
        tx,
        sql`select distinct on (chain) chain, seq, hash from ${table} order by chain, seq desc`,
      );
      const rows = heads.map((head) => {
        const checkpoint = { chain: head.chain, seq: Number(head.seq), hash: head.hash, cutAt: partition.end };
        return { ...checkpoint, ...signRecord(options.keyring, CHECKPOINT_PURPOSE, checkpointText(checkpoint)) };
      });
      for (let start = 0; start < rows.length; start += 1000) {
        await tx.insert(lockAuditCheckpoints).values(rows.slice(start, start + 1000)).onConflictDoNothing();
      }
      await tx.execute(sql`alter table lock_audit detach partition ${table}`);
      await tx.execute(sql`drop table ${table}`);
      return rows.length;
    });
    if (checkpoints !== undefined) dropped.push({ partition: partition.name, cutAt: partition.end, checkpoints });
  }
  return dropped;
}
