import type { Config } from '@jobfleet/config';
import type { BeginOutcome, IdempotencyKeyRef, JobIdentity, SyncEntity } from '@jobfleet/db';
import { AdmissionRefusal, type AdmissionContext, type AnyJobKind } from '@jobfleet/kinds';
import { jobIdFor, secondsUntilNextQuotaDay, type Admission } from '@jobfleet/queue';
import type { Queue } from 'bullmq';
import type { FastifyBaseLogger } from 'fastify';
import { z } from 'zod';
import { canonicalJson, sha256Hex } from '../canonical-json';
import { callPostgres as pg, type DependencyCall } from '../dependencies';
import { HttpProblem } from '../problem';
import { syncLink } from './sync';

// The steps of accepting one job that POST /v1/jobs/<kind> and its batch route share, short of
// the calls to Postgres and Redis: the acceptor (accept-jobs.ts) makes those, for many jobs at once.

/**
 * An unfinished idempotency row older than this belongs to a replica that died mid-request.
 * Accepting a job, or a batch of them, takes a few bounded Redis and Postgres calls, far below this.
 */
const STALE_IN_FLIGHT_SECONDS = 30;

/** How long a claimed key is replayed, and when an unfinished one may be taken over. */
export const idempotencyTimes = (config: Config) => ({ ttlSeconds: config.idempotency.ttlSeconds, staleAfterSeconds: STALE_IN_FLIGHT_SECONDS });

// RFC 9110 field value without spaces; 255 leaves room for UUIDs, hashes and composite keys.
export const idempotencyKeyValue = z.string().regex(/^[\x21-\x7E]{1,255}$/, 'must be 1 to 255 visible ASCII characters');

/** What an accepted request stored; replays send exactly this. */
const storedResponse = z.object({ headers: z.record(z.string(), z.string()), body: z.unknown() });
export type StoredResponse = z.infer<typeof storedResponse>;

/** The body of a job's first answer, 202, which its replays repeat. */
export interface AcceptedBody {
  jobId: string;
  queue: string;
  status: 'queued';
  idempotencyKey: string;
  links: Record<string, string>;
}

export const jobLink = (jobId: string) => `/v1/jobs/${encodeURIComponent(jobId)}`;

/** The queue of a kind, by name. */
export function queueFor(queues: Readonly<Record<string, Queue>>, name: string): Queue {
  const queue = queues[name];
  if (queue === undefined) throw new Error(`no queue for job kind ${name}`);
  return queue;
}

/**
 * The hash that tells a replay from a different request under the same key. JSON.parse accepts a
 * lone surrogate ("\ud800") that RFC 8785 cannot write; such a body has no stable hash, so it is refused.
 */
function requestHash(body: unknown): string {
  let text: string;
  try {
    text = canonicalJson(body);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new HttpProblem(422, `The request body has no canonical JSON form (RFC 8785): ${reason}`, { type: '/problems/validation', cause });
  }
  return sha256Hex(text);
}

/** A valid job request with everything accepting it needs, worked out before any call. */
export interface PreparedJob {
  /** The request as the kind's schema parsed it. */
  request: unknown;
  idempotencyKey: string;
  jobId: string;
  requestHash: string;
  ref: IdempotencyKeyRef;
  /** The answer: now, and on every replay. */
  stored: StoredResponse & { body: AcceptedBody };
  /** The entity's sync_status row, for a kind that keeps one. */
  sync: SyncEntity | null;
  /** The job's row in Postgres `jobs`, which the admin API lists and searches. */
  identity: JobIdentity;
  /** What goes to the queue, but for its fair-share priority. */
  job: { jobId: string; name: string; data: unknown };
}

/** Throws the 422 of a body without a canonical form. */
export function prepareJob(kind: AnyJobKind, tenantId: string, request: unknown, givenKey: string | undefined, requestId: string): PreparedJob {
  const { intake, name: queue, syncKind } = kind;
  // Without a key, the request's natural key: a resend of the same thing is a replay.
  const idempotencyKey = givenKey ?? intake.defaultIdempotencyKey(request);
  const jobId = jobIdFor(tenantId, idempotencyKey);
  const entityId = intake.entityId(request);
  const enqueuedAt = new Date();
  const links = { self: jobLink(jobId), ...(syncKind === null ? {} : { sync: syncLink(syncKind, entityId) }) };
  return {
    request,
    idempotencyKey,
    jobId,
    requestHash: requestHash(request),
    ref: { tenantId, scope: queue, key: idempotencyKey },
    stored: { headers: { location: jobLink(jobId) }, body: { jobId, queue, status: 'queued', idempotencyKey, links } },
    sync: syncKind === null ? null : { tenantId, kind: syncKind, entityId, version: intake.version(request), jobId },
    // createdAt is the job data's enqueuedAt: the workers' writes of this job's row name the same instant.
    identity: { kind: queue, id: jobId, tenantId, businessKey: entityId, idempotencyKey, createdAt: enqueuedAt },
    // The queue's job schema: { tenantId, idempotencyKey, request, enqueuedAt, requestId }. The
    // request hash covers `request` alone, so the request id never makes a replay a mismatch.
    job: { jobId, name: intake.jobName(request), data: { tenantId, idempotencyKey, request, enqueuedAt: enqueuedAt.toISOString(), requestId } },
  };
}

/** What beginning a key means for its request: go on, answer the stored first answer, or refuse. */
export type Claim = { kind: 'new' } | { kind: 'replay'; statusCode: number; stored: StoredResponse } | { kind: 'refused'; problem: HttpProblem };

export function claimOf(outcome: BeginOutcome, idempotencyKey: string): Claim {
  switch (outcome.kind) {
    case 'new':
      return outcome;
    case 'replay':
      return { kind: 'replay', statusCode: outcome.statusCode, stored: storedResponse.parse(outcome.response) };
    case 'in-flight':
      return {
        kind: 'refused',
        problem: new HttpProblem(409, `A request with Idempotency-Key "${idempotencyKey}" is still being accepted`, {
          type: '/problems/idempotency-in-flight',
          headers: { 'retry-after': '1' },
        }),
      };
    case 'mismatch':
      return {
        kind: 'refused',
        problem: new HttpProblem(422, `Idempotency-Key "${idempotencyKey}" was already used with a different request body`, {
          type: '/problems/idempotency-mismatch',
        }),
      };
    default:
      return outcome satisfies never;
  }
}

/** The kind's own judgement of a valid request (`intake.admit`): the problem refusing it, if any. */
export async function kindRefusal(kind: AnyJobKind, context: AdmissionContext, request: unknown): Promise<HttpProblem | undefined> {
  try {
    await pg(() => kind.intake.admit?.(context, request) ?? Promise.resolve());
    return undefined;
  } catch (error) {
    if (error instanceof AdmissionRefusal) return new HttpProblem(error.status, error.message, { type: error.type });
    throw error;
  }
}

// A client over its waiting-jobs quota may retry once some of its jobs have started.
const WAITING_QUOTA_RETRY_AFTER_SECONDS = 5;

/** A quota the job would exceed, as the 429 that names it. */
export function quotaProblem(refusal: Extract<Admission, { admitted: false }>, queue: string, now: number): HttpProblem {
  const retryAfter = refusal.quota === 'jobsPerDay' ? secondsUntilNextQuotaDay(now) : WAITING_QUOTA_RETRY_AFTER_SECONDS;
  const what = refusal.quota === 'jobsPerDay' ? `jobs accepted today (UTC)` : `jobs waiting at once`;
  return new HttpProblem(429, `Quota ${refusal.quota} of ${queue} exceeded: ${refusal.used} ${what}, limit ${refusal.limit}`, {
    type: '/problems/quota-exceeded',
    headers: { 'retry-after': String(retryAfter) },
    extensions: { quota: refusal.quota, kind: queue, limit: refusal.limit, used: refusal.used },
  });
}

/**
 * Removes a job that a failed request added, so that nothing unpromised runs; whether it is gone.
 * A job a worker has already stays: the client's retry meets it under the same id.
 */
export async function takeBackJob(redis: DependencyCall, queue: Queue, jobId: string, log: FastifyBaseLogger): Promise<boolean> {
  return redis(() => queue.remove(jobId)).then(
    (removed) => removed === 1,
    (removeError: unknown) => {
      log.warn({ err: removeError, jobId }, 'could not take back the job of a failed request');
      return false;
    },
  );
}
