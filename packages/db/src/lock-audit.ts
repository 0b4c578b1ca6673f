import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { and, asc, desc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { checkRecordSignature, type Keyring } from '@jobfleet/secrets';
import { rowsOf, type Db } from './client';
import { checkpointText, CHECKPOINT_PURPOSE } from './lock-audit-partitions';
import { lockAudit, lockAuditCheckpoints, type LockAuditEvent } from './schema';

/** One lock operation to append to the audit trail of its chain. */
export interface LockAuditInput {
  /** The hash chain the row joins: one per lock key. */
  chain: string;
  lockKey: string;
  event: LockAuditEvent;
  /** Worker id of the holder (or of the contender, for a conflict). */
  owner: string;
  tenantId?: string;
  jobId?: string;
  fencingToken?: number;
  /** Plain JSON (it is normalised through JSON before hashing, as jsonb would store it). */
  details?: Record<string, unknown>;
  at: Date;
}

/**
 * checkpoint-mismatch: a row at a checkpoint's seq has another hash; checkpoint-signature: the
 * checkpoint the chain starts from is not signed by the fleet (or its key left the keyring).
 */
export type LockAuditBreak = 'hash-mismatch' | 'prev-hash-mismatch' | 'seq-gap' | 'checkpoint-mismatch' | 'checkpoint-signature';

export interface BrokenLink {
  chain: string;
  seq: number;
  /** The row's id; null when the break is the checkpoint the chain starts from. */
  id: number | null;
  reason: LockAuditBreak;
}

export interface ChainVerification {
  chain: string;
  rows: number;
  /** The first broken link of the chain, if any; later rows are counted but not checked. */
  broken: BrokenLink | undefined;
}

export interface LockAuditVerification {
  chains: number;
  rows: number;
  broken: BrokenLink[];
}

export interface VerifyLockAuditOptions {
  /** Only this chain. Default: every chain. */
  chain?: string;
  /** Rows read per query. Default 1000. */
  batchSize?: number;
  /** Called as each chain is finished (in chain order), e.g. to print progress. */
  onChain?: (result: ChainVerification) => void;
  /**
   * Checks the signatures of the retention checkpoints that chains start from. Without it, a chain
   * whose oldest rows were dropped is reported broken (checkpoint-signature): it cannot be proven.
   */
  keyring?: Keyring;
}

/** The `prev_hash` of each chain's first row. */
export const GENESIS_HASH = '0'.repeat(64);

/** The hashed fields of a row: every column but `id` and `hash`, under their column names. */
interface HashedRow {
  chain: string;
  seq: number;
  lock_key: string;
  event: string;
  owner: string;
  tenant_id: string | null;
  job_id: string | null;
  fencing_token: number | null;
  details: unknown;
  /** ISO 8601 in UTC with milliseconds, exactly as hashed. */
  at: string;
  prev_hash: string;
}

/**
 * sha256(prev_hash || the row's RFC 8785 text). RFC 8785 sorts keys at every level (by UTF-16
 * code unit), so jsonb's key order does not matter. canonicalize writes the same bytes as the
 * hand-written canonicalJson it replaced for every row shape stored here, so older rows keep
 * their hashes (lock-audit.test.ts pins one). A lone surrogate, which Postgres could not store
 * as written anyway, makes it throw.
 */
function rowHash(row: HashedRow): string {
  const text = canonicalize(row);
  // canonicalize answers undefined only for what JSON has no text for at all; a row is an object.
  if (text === undefined) throw new TypeError('lock audit row has no JSON text');
  return createHash('sha256').update(row.prev_hash).update(text).digest('hex');
}

/**
 * Appends the events, in order, each to the end of its chain, in one transaction (a batch is
 * written whole or not at all, so a retried batch never duplicates rows).
 *
 * Writers of a chain are serialised by a transaction-scoped advisory lock on the chain's name,
 * taken before its last row is read; locks are taken in sorted order so two writers of
 * overlapping chains cannot deadlock. The unique (chain, seq) index is the backstop.
 */
export async function appendLockAuditEvents(db: Db, events: readonly LockAuditInput[]): Promise<void> {
  if (events.length === 0) return;
  const chains = [...new Set(events.map((e) => e.chain))].sort();
  await db.transaction(async (tx) => {
    await tx.execute(sql`
      select count(pg_advisory_xact_lock(hashtextextended(c, 0)))
      from (select c from unnest(${toTextArray(chains)}) with ordinality as u(c, n) order by n) as ordered`);
    // A chain whose rows all went out with old partitions goes on from its retention checkpoint.
    const heads = await rowsOf<{ chain: string; seq: string | number; hash: string }>(
      tx,
      sql`
        select distinct on (chain) chain, seq, hash from (
          select ${lockAudit.chain} as chain, ${lockAudit.seq} as seq, ${lockAudit.hash} as hash from ${lockAudit}
            where ${inArray(lockAudit.chain, chains)}
          union all
          select ${lockAuditCheckpoints.chain}, ${lockAuditCheckpoints.seq}, ${lockAuditCheckpoints.hash} from ${lockAuditCheckpoints}
            where ${inArray(lockAuditCheckpoints.chain, chains)}
        ) as heads order by chain, seq desc`,
    );
    const last = new Map(heads.map((h) => [h.chain, { seq: Number(h.seq), hash: h.hash }]));
    const rows = events.map((event) => {
      const previous = last.get(event.chain) ?? { seq: 0, hash: GENESIS_HASH };
      const hashed: HashedRow = {
        chain: event.chain,
        seq: previous.seq + 1,
        lock_key: event.lockKey,
        event: event.event,
        owner: event.owner,
        tenant_id: event.tenantId ?? null,
        job_id: event.jobId ?? null,
        fencing_token: event.fencingToken ?? null,
        // What jsonb will hand back: undefined fields gone, dates as strings.
        details: JSON.parse(JSON.stringify(event.details ?? {})) as unknown,
        at: event.at.toISOString(),
        prev_hash: previous.hash,
      };
      const hash = rowHash(hashed);
      last.set(event.chain, { seq: hashed.seq, hash });
      return {
        chain: hashed.chain,
        seq: hashed.seq,
        lockKey: hashed.lock_key,
        event: event.event,
        owner: hashed.owner,
        tenantId: hashed.tenant_id,
        jobId: hashed.job_id,
        fencingToken: hashed.fencing_token,
        details: hashed.details,
        at: hashed.at,
        prevHash: hashed.prev_hash,
        hash,
      };
    });
    await tx.insert(lockAudit).values(rows);
  });
}

function toTextArray(values: readonly string[]): SQL {
  return sql`array[${sql.join(
    values.map((v) => sql`${v}`),
    sql`, `,
  )}]::text[]`;
}

/**
 * Walks every chain (or one) in (chain, seq) order, a page at a time, recomputing each row's hash.
 * Reports the first broken link of each broken chain: a missing or repeated seq, a prev_hash that
 * is not the previous row's hash, or a hash that does not match the row (an edited row).
 */
export async function verifyLockAuditChains(db: Db, options: VerifyLockAuditOptions = {}): Promise<LockAuditVerification> {
  const batchSize = options.batchSize ?? 1000;
  const result: LockAuditVerification = { chains: 0, rows: 0, broken: [] };
  let current: (ChainVerification & { seq: number; hash: string }) | undefined;
  const finish = () => {
    if (!current) return;
    const { chain, rows, broken } = current;
    if (broken) result.broken.push(broken);
    options.onChain?.({ chain, rows, broken });
  };

  let cursor: { chain: string; seq: number } | undefined;
  let checkpoint: Checkpoint | undefined;
  for (;;) {
    const page = await readPage(db, options.chain, cursor, batchSize);
    const checkpoints = await latestCheckpoints(db, [...new Set(page.map((row) => row.chain))]);
    for (const row of page) {
      if (current?.chain !== row.chain) {
        finish();
        result.chains += 1;
        checkpoint = checkpoints.get(row.chain);
        current = { chain: row.chain, rows: 0, broken: undefined, ...startOf(row, checkpoint, options.keyring) };
      }
      result.rows += 1;
      current.rows += 1;
      if (!current.broken) {
        const reason = row.seq === checkpoint?.seq && row.hash !== checkpoint.hash ? 'checkpoint-mismatch' : checkLink(row, current);
        if (reason) current.broken = { chain: row.chain, seq: row.seq, id: row.id, reason };
        current.seq = row.seq;
        current.hash = row.hash;
      }
    }
    const tail = page.at(-1);
    if (!tail || page.length < batchSize) break;
    cursor = { chain: tail.chain, seq: tail.seq };
  }
  finish();
  return result;
}

type StoredRow = Omit<HashedRow, 'at'> & { id: number; hash: string; at: string };

interface Checkpoint {
  chain: string;
  seq: number;
  hash: string;
  cutAt: Date;
  keyId: string;
  signature: string;
}

/**
 * Where a chain's verification starts: the genesis when its first row is seq 1, else the latest
 * retention checkpoint, which must be the fleet's (signed). A chain that starts later without a
 * valid checkpoint lost rows: the first row's link then fails (seq-gap) or the start is broken.
 */
function startOf(
  first: StoredRow,
  checkpoint: Checkpoint | undefined,
  keyring: Keyring | undefined,
): { seq: number; hash: string; broken?: BrokenLink } {
  if (first.seq === 1 || checkpoint === undefined) return { seq: 0, hash: GENESIS_HASH };
  const check = keyring === undefined ? 'key-unavailable' : checkRecordSignature(keyring, CHECKPOINT_PURPOSE, checkpointText(checkpoint), checkpoint);
  if (check !== 'valid') return { seq: 0, hash: GENESIS_HASH, broken: { chain: first.chain, seq: checkpoint.seq, id: null, reason: 'checkpoint-signature' } };
  return { seq: checkpoint.seq, hash: checkpoint.hash };
}

async function latestCheckpoints(db: Db, chains: readonly string[]): Promise<Map<string, Checkpoint>> {
  if (chains.length === 0) return new Map();
  const rows = await db
    .selectDistinctOn([lockAuditCheckpoints.chain])
    .from(lockAuditCheckpoints)
    .where(inArray(lockAuditCheckpoints.chain, chains))
    .orderBy(lockAuditCheckpoints.chain, desc(lockAuditCheckpoints.seq));
  return new Map(rows.map((row) => [row.chain, row]));
}

function checkLink(row: StoredRow, previous: { seq: number; hash: string }): LockAuditBreak | undefined {
  if (row.seq !== previous.seq + 1) return 'seq-gap';
  if (row.prev_hash !== previous.hash) return 'prev-hash-mismatch';
  const { id: _id, hash, ...hashed } = row;
  return rowHash(hashed) === hash ? undefined : 'hash-mismatch';
}

async function readPage(db: Db, chain: string | undefined, after: { chain: string; seq: number } | undefined, limit: number): Promise<StoredRow[]> {
  const position = after ? sql`(${lockAudit.chain}, ${lockAudit.seq}) > (${after.chain}, ${after.seq})` : undefined;
  return db
    .select({
      id: lockAudit.id,
      chain: lockAudit.chain,
      seq: lockAudit.seq,
      lock_key: lockAudit.lockKey,
      event: lockAudit.event,
      owner: lockAudit.owner,
      tenant_id: lockAudit.tenantId,
      job_id: lockAudit.jobId,
      fencing_token: lockAudit.fencingToken,
      details: lockAudit.details,
      // Rendered in SQL so the text does not depend on the session's TimeZone or DateStyle;
      // microseconds are kept so an edit below the millisecond still changes the hashed text.
      at: sql<string>`to_char(${lockAudit.at} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')`.mapWith(isoFromMicros),
      prev_hash: lockAudit.prevHash,
      hash: lockAudit.hash,
    })
    .from(lockAudit)
    .where(and(chain === undefined ? undefined : eq(lockAudit.chain, chain), position))
    .orderBy(asc(lockAudit.chain), asc(lockAudit.seq))
    .limit(limit);
}

/** `2026-01-02T03:04:05.678000` -> `2026-01-02T03:04:05.678Z`, as Date#toISOString wrote it. */
function isoFromMicros(value: unknown): string {
  const text = String(value);
  return `${text.endsWith('000') ? text.slice(0, -3) : text}Z`;
}
