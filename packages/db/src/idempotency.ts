import { and, desc, eq, isNull, lt, lte, or, sql } from 'drizzle-orm';
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
      .where(
        and(
          byKey(input),
          or(
            lte(idempotencyKeys.expiresAt, sql`now()`),
            and(
              isNull(idempotencyKeys.statusCode),
              // Another body under a stale key could meet the first body's job in Redis: refuse it.
              eq(idempotencyKeys.requestHash, input.requestHash),
              lt(idempotencyKeys.createdAt, sql`now() - make_interval(secs => ${input.staleAfterSeconds})`),
            ),
          ),
        ),
      )
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
    if (existing.requestHash !== input.requestHash) return { kind: 'mismatch' };
    if (existing.statusCode === null) return { kind: 'in-flight' };
    return { kind: 'replay', statusCode: existing.statusCode, response: existing.response };
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
