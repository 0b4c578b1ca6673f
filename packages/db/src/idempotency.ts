import { and, desc, eq, isNull, lt, lte, or, sql, type SQL } from 'drizzle-orm';
import { arrayParam, columnName } from './bulk-sql';
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

function byKey(ref: IdempotencyKeyRef) {
  return and(
    eq(idempotencyKeys.tenantId, ref.tenantId),
    eq(idempotencyKeys.scope, ref.scope),
    eq(idempotencyKeys.key, ref.key),
  );
}

/**
 * Whether a request whose body hashes to `requestHash` may take over the stored row: it expired, or
 * it is unfinished and stale. Another body under a stale key could meet the first body's job in
 * Redis, so only the same body takes a stale key over.
 */
function mayTakeOver(requestHash: string | SQL, staleAfterSeconds: number) {
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
  // A row can vanish between the steps (abandoned or pruned); then the insert is simply retried.
  for (let round = 0; round < 3; round++) {
    const inserted = await db
      .insert(idempotencyKeys)
      .values({
        tenantId: input.tenantId,
        scope: input.scope,
        key: input.key,
        requestHash: input.requestHash,
        jobId: input.jobId,
        expiresAt: secondsFromNow(input.ttlSeconds),
      })
      .onConflictDoNothing()
      .returning({ key: idempotencyKeys.key });
    if (inserted.length > 0) return { kind: 'new' };

    // Row-locking UPDATE re-checks its WHERE after a concurrent taker commits, so only one wins.
    const takenOver = await db
      .update(idempotencyKeys)
      .set({
        requestHash: input.requestHash,
        jobId: input.jobId,
        statusCode: null,
        response: null,
        createdAt: sql`now()`,
        expiresAt: secondsFromNow(input.ttlSeconds),
      })
      .where(and(byKey(input), mayTakeOver(input.requestHash, input.staleAfterSeconds)))
      .returning({ key: idempotencyKeys.key });
    if (takenOver.length > 0) return { kind: 'new' };

    const existing = (
      await db
        .select({
          requestHash: idempotencyKeys.requestHash,
          statusCode: idempotencyKeys.statusCode,
          response: idempotencyKeys.response,
        })
        .from(idempotencyKeys)
        .where(byKey(input))
    )[0];
    if (existing === undefined) continue;
    return outcomeAgainst(existing, input.requestHash);
  }
  // Three rounds of the row appearing and disappearing: another caller is busy with this key.
  return { kind: 'in-flight' };
}

/** Stores the response that later requests with the key replay. */
export async function completeIdempotentRequest(
  db: Db,
  input: IdempotencyKeyRef & { statusCode: number; response: unknown },
): Promise<void> {
  await db
    .update(idempotencyKeys)
    .set({ statusCode: input.statusCode, response: input.response })
    .where(byKey(input));
}

/** Forgets an unfinished request (its enqueue failed) so the client may retry with the same key. */
export async function abandonIdempotentRequest(db: Db, ref: IdempotencyKeyRef): Promise<void> {
  await db.delete(idempotencyKeys).where(and(byKey(ref), isNull(idempotencyKeys.statusCode)));
}

/** Requests of one tenant on one endpoint, each under its own key: a batch. */
export interface IdempotentBatchRef {
  tenantId: string;
  scope: string;
}

export interface BeginIdempotentRequests extends IdempotentBatchRef {
  /** Distinct keys. */
  requests: readonly Pick<BeginIdempotentRequest, 'key' | 'requestHash' | 'jobId'>[];
  ttlSeconds: number;
  staleAfterSeconds: number;
}

const byKeyOrder = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

const textArray = (values: readonly string[]) => arrayParam(values, 'text');

/** The requests as a relation (key, request_hash, job_id), in their order. */
const claimsOf = (requests: BeginIdempotentRequests['requests']) =>
  sql`unnest(${textArray(requests.map((r) => r.key))}, ${textArray(requests.map((r) => r.requestHash))}, ${textArray(requests.map((r) => r.jobId))})`;

/**
 * The keys of `requests` that exist already: those an expired or stale row lets this batch take
 * over are taken (`taken`), the others are read as they were. One statement: every part of it sees
 * the rows as they were before its update.
 */
async function takeOverOrRead(db: Db, batch: BeginIdempotentRequests, requests: BeginIdempotentRequests['requests']) {
  const ofBatch = sql`${idempotencyKeys.tenantId} = ${batch.tenantId} and ${idempotencyKeys.scope} = ${batch.scope}`;
  const result = (await db.execute(sql`
    with claim ("key", request_hash, job_id) as (select * from ${claimsOf(requests)}),
    taken as (
      update ${idempotencyKeys}
      set ${columnName(idempotencyKeys.requestHash)} = claim.request_hash, ${columnName(idempotencyKeys.jobId)} = claim.job_id,
          ${columnName(idempotencyKeys.statusCode)} = null, ${columnName(idempotencyKeys.response)} = null,
          ${columnName(idempotencyKeys.createdAt)} = now(), ${columnName(idempotencyKeys.expiresAt)} = ${secondsFromNow(batch.ttlSeconds)}
      from claim
      where ${ofBatch} and ${idempotencyKeys.key} = claim."key"
        and ${mayTakeOver(sql`claim.request_hash`, batch.staleAfterSeconds)}
      returning ${idempotencyKeys.key}
    )
    select ${idempotencyKeys.key} as "key", ${idempotencyKeys.requestHash} as "requestHash",
      ${idempotencyKeys.statusCode} as "statusCode", ${idempotencyKeys.response} as "response",
      ${idempotencyKeys.key} in (select "key" from taken) as "taken"
    from ${idempotencyKeys}
    where ${ofBatch} and ${idempotencyKeys.key} in (select "key" from claim)
  `)) as { rows: (StoredRequest & { key: string; taken: boolean })[] };
  return result.rows;
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
    const claimed = [...outcomes].flatMap(([key, outcome]) => (outcome.kind === 'new' ? [key] : []));
    await abandonIdempotentRequests(db, batch, claimed).catch(() => undefined);
    throw error;
  }
  // Three rounds of a row appearing and disappearing: another caller is busy with that key.
  return batch.requests.map((request) => outcomes.get(request.key) ?? { kind: 'in-flight' });
}

/** Records each key's outcome in `outcomes` as soon as a statement has settled it. */
async function claimKeys(db: Db, batch: BeginIdempotentRequests, outcomes: Map<string, BeginOutcome>): Promise<void> {
  // In key order, so that two batches claiming the same keys wait for each other in one order and never deadlock.
  let open = [...batch.requests].sort(byKeyOrder);
  for (let round = 0; round < 3 && open.length > 0; round++) {
    const inserted = (await db.execute(sql`
      insert into ${idempotencyKeys} (${columnName(idempotencyKeys.tenantId)}, ${columnName(idempotencyKeys.scope)}, ${columnName(idempotencyKeys.key)},
        ${columnName(idempotencyKeys.requestHash)}, ${columnName(idempotencyKeys.jobId)}, ${columnName(idempotencyKeys.expiresAt)})
      select ${batch.tenantId}, ${batch.scope}, claim."key", claim.request_hash, claim.job_id, ${secondsFromNow(batch.ttlSeconds)}
      from ${claimsOf(open)} as claim ("key", request_hash, job_id)
      on conflict do nothing
      returning ${columnName(idempotencyKeys.key)} as "key"
    `)) as { rows: { key: string }[] };
    for (const { key } of inserted.rows) outcomes.set(key, { kind: 'new' });
    const existing = open.filter((request) => !outcomes.has(request.key));
    if (existing.length === 0) break;

    const hashes = new Map(existing.map((request) => [request.key, request.requestHash]));
    for (const row of await takeOverOrRead(db, batch, existing)) {
      outcomes.set(row.key, row.taken ? { kind: 'new' } : outcomeAgainst(row, hashes.get(row.key) ?? ''));
    }
    // A row can vanish between the statements (abandoned or pruned); its key is simply tried again.
    open = existing.filter((request) => !outcomes.has(request.key));
  }
}

/** completeIdempotentRequest for many keys of a batch, in one statement. */
export async function completeIdempotentRequests(
  db: Db,
  batch: IdempotentBatchRef & { statusCode: number; responses: readonly { key: string; response: unknown }[] },
): Promise<void> {
  if (batch.responses.length === 0) return;
  const keys = textArray(batch.responses.map(({ key }) => key));
  const responses = textArray(batch.responses.map(({ response }) => JSON.stringify(response)));
  await db.execute(sql`
    update ${idempotencyKeys} set ${columnName(idempotencyKeys.statusCode)} = ${batch.statusCode}, ${columnName(idempotencyKeys.response)} = done.response::jsonb
    from unnest(${keys}, ${responses}) as done ("key", response)
    where ${idempotencyKeys.tenantId} = ${batch.tenantId} and ${idempotencyKeys.scope} = ${batch.scope}
      and ${idempotencyKeys.key} = done."key"
  `);
}

/** abandonIdempotentRequest for many keys of a batch, in one statement. */
export async function abandonIdempotentRequests(db: Db, batch: IdempotentBatchRef, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await db
    .delete(idempotencyKeys)
    .where(
      and(
        eq(idempotencyKeys.tenantId, batch.tenantId),
        eq(idempotencyKeys.scope, batch.scope),
        sql`${idempotencyKeys.key} = any(${textArray(keys)})`,
        isNull(idempotencyKeys.statusCode),
      ),
    );
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

/** Deletes rows expired at `now`; returns how many. */
export async function pruneExpiredIdempotencyKeys(db: Db, now: Date = new Date()): Promise<number> {
  // Counted in the database: RETURNING every key of a large backlog would ship it all to us.
  const result = (await db.execute(sql`
    with pruned as (delete from ${idempotencyKeys} where ${idempotencyKeys.expiresAt} <= ${now} returning 1)
    select count(*)::int as count from pruned
  `)) as { rows: { count: number }[] };
  return result.rows[0]?.count ?? 0;
}
