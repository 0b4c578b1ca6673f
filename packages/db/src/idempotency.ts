import { and, desc, eq, isNull, lt, lte, or, sql, type SQL } from 'drizzle-orm';
import { columnName, executePrepared, inKeyOrder, jsonRows, storedText } from './bulk-sql';
import type { Db } from './client';
import { idempotencyKeys } from './schema';

// Postgres is the source of truth for Idempotency-Key: BullMQ's jobId dedup only lasts while the
// job is retained in Redis. All times come from the database clock, so replicas' clocks don't matter.

export type IdempotencyRecord = typeof idempotencyKeys.$inferSelect;

export interface IdempotencyKeyRef {
  tenantId: string;
  /** The endpoint the key was used on (the queue name), so one key may serve several endpoints. */
  scope: string;
  key: string;
}

export interface BeginIdempotentRequest extends IdempotencyKeyRef {
  /** sha256 of the canonical request body. */
  requestHash: string;
  jobId: string;
  /** How long a completed response is replayed. */
  ttlSeconds: number;
  /**
   * An unfinished row older than this is presumed abandoned by a crashed replica and may be taken
   * over by a request with the same body (re-enqueueing is safe: the job id is deterministic).
   */
  staleAfterSeconds: number;
}

export type BeginOutcome =
  | { kind: 'new' }
  | { kind: 'replay'; statusCode: number; response: unknown }
  | { kind: 'in-flight' }
  | { kind: 'mismatch' };

const secondsFromNow = (seconds: number) => sql`now() + make_interval(secs => ${seconds})`;

/**
 * Whether a request whose body hashes to `requestHash` may take over the stored row: it expired, or
 * it is unfinished and stale. Another body under a stale key could meet the first body's job in
 * Redis, so only the same body takes a stale key over.
 */
function mayTakeOver(requestHash: SQL, staleAfterSeconds: number) {
  return or(
    lte(idempotencyKeys.expiresAt, sql`now()`),
    and(
      isNull(idempotencyKeys.statusCode),
      eq(idempotencyKeys.requestHash, requestHash),
      lt(idempotencyKeys.createdAt, sql`now() - make_interval(secs => ${staleAfterSeconds})`),
    ),
  );
}

type StoredRequest = Pick<IdempotencyRecord, 'requestHash' | 'statusCode' | 'response'>;

/** What a row another request holds means for a request with `requestHash`. */
function outcomeAgainst(existing: StoredRequest, requestHash: string): BeginOutcome {
  if (existing.requestHash !== requestHash) return { kind: 'mismatch' };
  if (existing.statusCode === null) return { kind: 'in-flight' };
  return { kind: 'replay', statusCode: existing.statusCode, response: existing.response };
}

/**
 * Claims the key for this request, atomically: of any number of concurrent callers exactly one
 * gets `new`; the others see `in-flight` (same body, not finished), `replay` (same body, finished)
 * or `mismatch` (another body).
 */
export async function beginIdempotentRequest(db: Db, input: BeginIdempotentRequest): Promise<BeginOutcome> {
  const [outcome] = await beginIdempotentRequests(db, { requests: [input], ttlSeconds: input.ttlSeconds, staleAfterSeconds: input.staleAfterSeconds });
  return outcome ?? { kind: 'in-flight' };
}

/** Stores the response that later requests with the key replay. */
export function completeIdempotentRequest(db: Db, input: IdempotencyKeyRef & { statusCode: number; response: unknown }): Promise<void> {
  return completeIdempotentRequests(db, [input]);
}

/** Forgets an unfinished request (its enqueue failed) so the client may retry with the same key. */
export function abandonIdempotentRequest(db: Db, ref: IdempotencyKeyRef): Promise<void> {
  return abandonIdempotentRequests(db, [ref]);
}

/** Requests under keys of their own, of any tenants and endpoints: a batch, or concurrent requests gathered into one statement. */
export interface BeginIdempotentRequests {
  /** Distinct keys. */
  requests: readonly (IdempotencyKeyRef & Pick<BeginIdempotentRequest, 'requestHash' | 'jobId'>)[];
  ttlSeconds: number;
  staleAfterSeconds: number;
}

/** One string per key, for maps: the three parts as JSON, so no part can run into the next. */
const keyOf = (ref: IdempotencyKeyRef) => JSON.stringify([ref.tenantId, ref.scope, ref.key]);

/** The refs' key columns, for jsonRows. */
const refRow = (r: IdempotencyKeyRef) => ({ tenant_id: storedText(r.tenantId), scope: storedText(r.scope), key: storedText(r.key) });

/** The claims as a relation (tenant_id, scope, "key", request_hash, job_id), to select from. */
const claimsOf = (requests: BeginIdempotentRequests['requests']) =>
  sql`json_to_recordset(${jsonRows(requests.map((r) => ({ ...refRow(r), request_hash: storedText(r.requestHash), job_id: storedText(r.jobId) })))})
    as claim (tenant_id text, scope text, "key" text, request_hash text, job_id text)`;

/** Whether the row of `idempotencyKeys` is the one `alias` names. */
const isRowOf = (alias: string) =>
  sql`${idempotencyKeys.tenantId} = ${sql.raw(alias)}.tenant_id and ${idempotencyKeys.scope} = ${sql.raw(alias)}.scope and ${idempotencyKeys.key} = ${sql.raw(alias)}."key"`;

type StoredRow = StoredRequest & IdempotencyKeyRef & { taken: boolean; lostRace: boolean };

/**
 * The keys of `requests` that exist already: those an expired or stale row lets this batch take
 * over are taken (`taken`), the others are read as they were. One statement: every part of it sees
 * the rows as they were before its update. A row this batch could have taken but another statement
 * took first (`lostRace`) is read as it was before that, so its key must be asked again.
 */
async function takeOverOrRead(db: Db, batch: BeginIdempotentRequests, requests: BeginIdempotentRequests['requests']): Promise<StoredRow[]> {
  return executePrepared<StoredRow>(db, sql`
    with claim as (select * from ${claimsOf(requests)}),
    taken as (
      update ${idempotencyKeys}
      set ${columnName(idempotencyKeys.requestHash)} = claim.request_hash, ${columnName(idempotencyKeys.jobId)} = claim.job_id,
          ${columnName(idempotencyKeys.statusCode)} = null, ${columnName(idempotencyKeys.response)} = null,
          ${columnName(idempotencyKeys.createdAt)} = now(), ${columnName(idempotencyKeys.expiresAt)} = ${secondsFromNow(batch.ttlSeconds)}
      from claim
      where ${isRowOf('claim')} and ${mayTakeOver(sql`claim.request_hash`, batch.staleAfterSeconds)}
      returning ${idempotencyKeys.tenantId} as tenant_id, ${idempotencyKeys.scope} as scope, ${idempotencyKeys.key} as "key"
    )
    select ${idempotencyKeys.tenantId} as "tenantId", ${idempotencyKeys.scope} as "scope", ${idempotencyKeys.key} as "key",
      ${idempotencyKeys.requestHash} as "requestHash", ${idempotencyKeys.statusCode} as "statusCode", ${idempotencyKeys.response} as "response",
      exists (select 1 from taken where ${isRowOf('taken')}) as "taken",
      ${mayTakeOver(sql`claim.request_hash`, batch.staleAfterSeconds)} and not exists (select 1 from taken where ${isRowOf('taken')}) as "lostRace"
    from ${idempotencyKeys} join claim on ${isRowOf('claim')}
  `);
}

/**
 * beginIdempotentRequest for many keys, with the same guarantee for each: one multi-row insert
 * claims the free keys and, when some exist already, one more statement takes over the expired
 * and stale ones and reads the rest. The outcomes come in the order of `requests`.
 */
export async function beginIdempotentRequests(db: Db, batch: BeginIdempotentRequests): Promise<BeginOutcome[]> {
  const outcomes = new Map<string, BeginOutcome>();
  try {
    await claimKeys(db, batch, outcomes);
  } catch (error) {
    // Keys claimed before a later statement failed are given back if Postgres lets us, so that the
    // retry is not refused as in flight; if not, they go stale and the retry takes them over.
    const claimed = batch.requests.filter((request) => outcomes.get(keyOf(request))?.kind === 'new');
    await abandonIdempotentRequests(db, claimed).catch(() => undefined);
    throw error;
  }
  // Three rounds of a row appearing and disappearing: another caller is busy with that key.
  return batch.requests.map((request) => outcomes.get(keyOf(request)) ?? { kind: 'in-flight' });
}

/** Records each key's outcome in `outcomes` as soon as a statement has settled it. */
async function claimKeys(db: Db, batch: BeginIdempotentRequests, outcomes: Map<string, BeginOutcome>): Promise<void> {
  // In key order, so that two batches claiming the same keys wait for each other in one order and never deadlock.
  let open = inKeyOrder(batch.requests, keyOf);
  for (let round = 0; round < 3 && open.length > 0; round++) {
    const inserted = await executePrepared<IdempotencyKeyRef>(db, sql`
      insert into ${idempotencyKeys} (${columnName(idempotencyKeys.tenantId)}, ${columnName(idempotencyKeys.scope)}, ${columnName(idempotencyKeys.key)},
        ${columnName(idempotencyKeys.requestHash)}, ${columnName(idempotencyKeys.jobId)}, ${columnName(idempotencyKeys.expiresAt)})
      select claim.tenant_id, claim.scope, claim."key", claim.request_hash, claim.job_id, ${secondsFromNow(batch.ttlSeconds)}
      from ${claimsOf(open)}
      on conflict do nothing
      returning ${columnName(idempotencyKeys.tenantId)} as "tenantId", ${columnName(idempotencyKeys.scope)} as "scope", ${columnName(idempotencyKeys.key)} as "key"
    `);
    for (const ref of inserted) outcomes.set(keyOf(ref), { kind: 'new' });
    const existing = open.filter((request) => !outcomes.has(keyOf(request)));
    if (existing.length === 0) break;

    const hashes = new Map(existing.map((request) => [keyOf(request), request.requestHash]));
    for (const row of await takeOverOrRead(db, batch, existing)) {
      if (row.lostRace) continue;
      outcomes.set(keyOf(row), row.taken ? { kind: 'new' } : outcomeAgainst(row, hashes.get(keyOf(row)) ?? ''));
    }
    // A row can vanish between the statements (abandoned or pruned); its key is simply tried again.
    open = existing.filter((request) => !outcomes.has(keyOf(request)));
  }
}

/** completeIdempotentRequest for many keys, in one statement. */
export async function completeIdempotentRequests(
  db: Db,
  completions: readonly (IdempotencyKeyRef & { statusCode: number; response: unknown })[],
): Promise<void> {
  if (completions.length === 0) return;
  await executePrepared(db, sql`
    update ${idempotencyKeys} set ${columnName(idempotencyKeys.statusCode)} = done.status_code, ${columnName(idempotencyKeys.response)} = done.response
    from json_to_recordset(${jsonRows(completions.map((c) => ({ ...refRow(c), status_code: c.statusCode, response: c.response })))})
      as done (tenant_id text, scope text, "key" text, status_code smallint, response jsonb)
    where ${isRowOf('done')}
  `);
}

/** abandonIdempotentRequest for many keys, in one statement. */
export async function abandonIdempotentRequests(db: Db, refs: readonly IdempotencyKeyRef[]): Promise<void> {
  if (refs.length === 0) return;
  await executePrepared(db, sql`
    delete from ${idempotencyKeys} using json_to_recordset(${jsonRows(refs.map(refRow))}) as gone (tenant_id text, scope text, "key" text)
    where ${isRowOf('gone')} and ${idempotencyKeys.statusCode} is null
  `);
}

/** The record that created a job: its owner and queue (scope). */
export async function findIdempotencyRecordByJobId(db: Db, jobId: string): Promise<IdempotencyRecord | undefined> {
  const rows = await db
    .select()
    .from(idempotencyKeys)
    .where(eq(idempotencyKeys.jobId, jobId))
    .orderBy(desc(idempotencyKeys.createdAt))
    .limit(1);
  return rows[0];
}

