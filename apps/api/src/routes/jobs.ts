import type { Config } from '@jobfleet/config';
import {
  abandonIdempotentRequest,
  beginIdempotentRequest,
  completeIdempotentRequest,
  findIdempotencyRecordByJobId,
  findSyncStatusByJobId,
  syncStatusRepository,
  type Db,
  type IdempotencyKeyRef,
  type TenantLimitsCache,
} from '@jobfleet/db';
import { AdmissionRefusal, type AdmissionContext, type AnyJobKind } from '@jobfleet/kinds';
import { enqueue, jobIdFor, secondsUntilNextQuotaDay, type Admission, type TenantCapacity } from '@jobfleet/queue';
import type { Job, Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { canonicalJson, sha256Hex } from '../canonical-json';
import { callPostgres as pg, redisCaller, type DependencyCall } from '../dependencies';
import { docs, enqueueDocs } from '../openapi';
import type { Auth } from '../plugins/auth';
import { storableText } from '../params';
import { HttpProblem, parseOrThrow } from '../problem';
import { syncLink, syncStatusView } from './sync';

export interface JobRoutesDeps {
  config: Config;
  db: Db;
  /** The registry's kinds: one enqueue route each. */
  kinds: readonly AnyJobKind[];
  /** A queue per kind, by name. */
  queues: Readonly<Record<string, Queue>>;
  /** The producer connection the queues share. */
  redis: Redis;
  auth: Auth;
  /** Each tenant's quotas and fair-share position (Redis), and its limits (Postgres, cached). */
  capacity: TenantCapacity;
  limits: TenantLimitsCache;
}

/**
 * An unfinished idempotency row older than this belongs to a replica that died mid-request.
 * Accepting a job takes one bounded Redis call and three Postgres writes, far below this.
 */
const STALE_IN_FLIGHT_SECONDS = 30;
// drizzle's message for a failed statement: the SQL text and its parameters, for logs only.
const SQL_IN_MESSAGE = /^Failed query:[\s\S]*$/;
// Our failedReason is `<CODE>: <message>` for typed errors (see the worker's unrecoverable()).
const CODED_REASON = /^([A-Z][A-Z0-9_]{2,63}): ([\s\S]*)$/;

/** A failed attempt as producers see it: its code, message and whether it will be tried again; no stack, no SQL. */
function publicJobError(job: Job, state: string) {
  if (!job.failedReason) return null;
  const coded = CODED_REASON.exec(job.failedReason);
  const message = (coded?.[2] ?? job.failedReason).replace(SQL_IN_MESSAGE, 'a database statement failed');
  return { code: coded?.[1] ?? 'UNEXPECTED', message, retryable: state !== 'failed' };
}

// RFC 9110 field value without spaces; 255 leaves room for UUIDs, hashes and composite keys.
const idempotencyHeader = z.strictObject({
  'idempotency-key': z
    .string()
    .regex(/^[\x21-\x7E]{1,255}$/, 'must be 1 to 255 visible ASCII characters')
    .optional(),
});
const jobParams = z.strictObject({ id: storableText(512) });

/** What an accepted request stored; replays send exactly this. */
const storedResponse = z.object({ headers: z.record(z.string(), z.string()), body: z.unknown() });
type StoredResponse = z.infer<typeof storedResponse>;

const jobLink = (jobId: string) => `/v1/jobs/${encodeURIComponent(jobId)}`;
const isoOrNull = (ms: number | undefined) => (ms === undefined || ms === 0 ? null : new Date(ms).toISOString());

function sendStored(reply: FastifyReply, statusCode: number, stored: StoredResponse, replayed: boolean): FastifyReply {
  reply.code(statusCode).headers(stored.headers).type('application/json');
  if (replayed) reply.header('idempotent-replayed', 'true');
  // Canonical text: jsonb does not keep key order, and a replay must match the first answer byte for byte.
  return reply.send(canonicalJson(stored.body));
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

async function jobView(queue: string, job: Job, redis: DependencyCall) {
  // Every tenant job is queued with a fair-share priority; to its producer it is simply waiting.
  const bullState = await redis(() => job.getState());
  const state = bullState === 'prioritized' ? 'waiting' : bullState;
  return {
    id: job.id,
    queue,
    state,
    attempts: job.attemptsMade,
    maxAttempts: job.opts.attempts ?? 1,
    createdAt: new Date(job.timestamp).toISOString(),
    processedAt: isoOrNull(job.processedOn),
    finishedAt: isoOrNull(job.finishedOn),
    data: job.data as unknown,
    result: (job.returnvalue as unknown) ?? null,
    error: publicJobError(job, state),
  };
}

// A client over its waiting-jobs quota may retry once some of its jobs have started.
const WAITING_QUOTA_RETRY_AFTER_SECONDS = 5;

/** A quota the job would exceed, as the 429 that names it. */
function quotaProblem(refusal: Extract<Admission, { admitted: false }>, queue: string, now: number): HttpProblem {
  const retryAfter = refusal.quota === 'jobsPerDay' ? secondsUntilNextQuotaDay(now) : WAITING_QUOTA_RETRY_AFTER_SECONDS;
  const what = refusal.quota === 'jobsPerDay' ? `jobs accepted today (UTC)` : `jobs waiting at once`;
  return new HttpProblem(429, `Quota ${refusal.quota} of ${queue} exceeded: ${refusal.used} ${what}, limit ${refusal.limit}`, {
    type: '/problems/quota-exceeded',
    headers: { 'retry-after': String(retryAfter) },
    extensions: { quota: refusal.quota, kind: queue, limit: refusal.limit, used: refusal.used },
  });
}

/** An admission refusal as the problem answered for it. */
async function admit(kind: AnyJobKind, context: AdmissionContext, body: unknown): Promise<void> {
  try {
    await pg(() => kind.intake.admit?.(context, body) ?? Promise.resolve());
  } catch (error) {
    if (error instanceof AdmissionRefusal) throw new HttpProblem(error.status, error.message, { type: error.type });
    throw error;
  }
}

export function registerJobRoutes(app: FastifyInstance, { config, db, kinds, queues, redis: connection, auth, capacity, limits }: JobRoutesDeps): void {
  const redis = redisCaller(connection);
  const queueOf = (name: string): Queue => {
    const queue = queues[name];
    if (queue === undefined) throw new Error(`no queue for job kind ${name}`);
    return queue;
  };

  async function accept(kind: AnyJobKind, request: FastifyRequest, reply: FastifyReply) {
    const { intake, name: queue } = kind;
    const { tenantId } = auth.principal(request);
    const header = parseOrThrow(
      idempotencyHeader,
      { 'idempotency-key': request.headers['idempotency-key'] },
      'The Idempotency-Key header',
    )['idempotency-key'];
    const body = parseOrThrow(kind.requestSchema, request.body, 'The request body', 422);
    const { syncKind } = kind;
    const entityId = intake.entityId(body);
    // Without a key, the request's natural key: a resend of the same thing is a replay.
    const idempotencyKey = header ?? intake.defaultIdempotencyKey(body);
    const ref: IdempotencyKeyRef = { tenantId, scope: queue, key: idempotencyKey };
    const jobId = jobIdFor(tenantId, idempotencyKey);

    const hash = requestHash(body);
    const outcome = await pg(() =>
      beginIdempotentRequest(db, {
        ...ref,
        requestHash: hash,
        jobId,
        ttlSeconds: config.idempotency.ttlSeconds,
        staleAfterSeconds: STALE_IN_FLIGHT_SECONDS,
      }),
    );
    switch (outcome.kind) {
      case 'new':
        break;
      case 'replay':
        return sendStored(reply, outcome.statusCode, storedResponse.parse(outcome.response), true);
      case 'in-flight':
        throw new HttpProblem(409, `A request with Idempotency-Key "${idempotencyKey}" is still being accepted`, {
          type: '/problems/idempotency-in-flight',
          headers: { 'retry-after': '1' },
        });
      case 'mismatch':
        throw new HttpProblem(
          422,
          `Idempotency-Key "${idempotencyKey}" was already used with a different request body`,
          { type: '/problems/idempotency-mismatch' },
        );
      default:
        return outcome satisfies never;
    }

    const stored: StoredResponse = {
      headers: { location: jobLink(jobId) },
      body: {
        jobId,
        queue,
        status: 'queued',
        idempotencyKey,
        links: { self: jobLink(jobId), ...(syncKind === null ? {} : { sync: syncLink(syncKind, entityId) }) },
      },
    };
    // The queue's job schema: { tenantId, idempotencyKey, request, enqueuedAt }.
    const data = { tenantId, idempotencyKey, request: body, enqueuedAt: new Date().toISOString() };
    let enqueuedHere = false;
    let counted = false;
    const capacityRef = { kind: queue, tenantId, jobId };
    try {
      // Judged after the key is ours, so a replay of an accepted request still gets its first answer.
      await admit(kind, { config, db, tenantId }, body);
      const quotas = (await pg(() => limits.limitsOf(tenantId))).quotas(queue);
      const now = Date.now();
      const admission = await redis(() => capacity.admit(capacityRef, quotas, now));
      if (!admission.admitted) throw quotaProblem(admission, queue, now);
      counted = admission.counted;
      // Written before the enqueue, so a failing write leaves nothing in Redis.
      if (syncKind !== null) {
        await pg(() => syncStatusRepository.recordEnqueued(db, { tenantId, kind: syncKind, entityId, version: intake.version(body), jobId }));
      }
      // A timed-out enqueue may still land; the retry then meets it under the same job id.
      const { created } = await redis(() => enqueue(queueOf(queue), { jobId, name: intake.jobName(body), data, priority: admission.priority }));
      enqueuedHere = created;
      // Expected after a stale takeover; after an expired key was reused it means Redis still holds the
      // old job under this id, and that job (not this body) is what runs.
      if (!created) request.log.warn({ jobId, idempotencyKey }, 'job id already in Redis: the existing job was kept');
      await pg(() => completeIdempotentRequest(db, { ...ref, statusCode: 202, response: stored }));
    } catch (error) {
      // Nothing was promised yet: take back a job this request added (unless a worker has it
      // already: the client's retry then meets it under the same id), and free the key so the
      // retry is not refused as in flight. If Postgres is what failed, the row goes stale and the
      // retry takes it over.
      const takenBack = !enqueuedHere || (await redis(() => queueOf(queue).remove(jobId)).then(
        (removed) => removed === 1,
        (removeError: unknown) => {
          request.log.warn({ err: removeError, jobId }, 'could not take back the job of a failed request');
          return false;
        },
      ));
      // A job that stays (a worker has it) keeps counting until it finishes.
      if (counted && takenBack) {
        await redis(() => capacity.withdraw(capacityRef)).catch((withdrawError: unknown) =>
          request.log.warn({ err: withdrawError, jobId }, 'could not take back the quota of a failed request'),
        );
      }
      await pg(() => abandonIdempotentRequest(db, ref)).catch((abandonError: unknown) =>
        request.log.warn({ err: abandonError, idempotencyKey }, 'could not abandon the idempotency key'),
      );
      throw error;
    }
    return sendStored(reply, 202, stored, false);
  }

  for (const kind of kinds) {
    app.post(
      `/v1/jobs/${kind.name}`,
      { onRequest: auth.requireScope(kind.intake.requiredScope), schema: enqueueDocs(kind) },
      (request, reply) => accept(kind, request, reply),
    );
  }

  app.get('/v1/jobs/:id', { onRequest: auth.requireScope('jobs:read'), schema: docs.getJob }, async (request) => {
    const { id } = parseOrThrow(jobParams, request.params, 'The path');
    const { tenantId } = auth.principal(request);
    // Postgres holds each job's owner and queue for the idempotency TTL; past it the job is unknown here.
    const record = await pg(() => findIdempotencyRecordByJobId(db, id));
    if (record === undefined || queues[record.scope] === undefined) throw new HttpProblem(404, `No job "${id}"`);
    if (record.tenantId !== tenantId) throw new HttpProblem(403, `Job "${id}" belongs to another tenant`);
    const queue = record.scope;

    const [job, sync] = await Promise.all([
      redis(() => queueOf(queue).getJob(id)),
      pg(() => findSyncStatusByJobId(db, tenantId, id)),
    ]);
    const links = { self: jobLink(id), ...(sync === undefined ? {} : { sync: syncLink(sync.kind, sync.entityId) }) };
    if (job === undefined) {
      // Retention removed it from Redis; the stored status is what is left.
      return {
        id,
        queue,
        state: 'expired-from-queue',
        createdAt: record.createdAt.toISOString(),
        sync: sync === undefined ? null : syncStatusView(sync),
        links,
      };
    }
    return { ...(await jobView(queue, job, redis)), links };
  });
}
