import type { Config } from '@jobfleet/config';
import { findIdempotencyRecordByJobId, findSyncStatusByJobId, type Db, type SyncStatusRow } from '@jobfleet/db';
import type { AnyJobKind } from '@jobfleet/kinds';
import type { RedisConnections } from '@jobfleet/queue';
import type { Job, Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { canonicalJson } from '../canonical-json';
import { callPostgres as pg, queueRedisCaller } from '../dependencies';
import { docs, enqueueDocs } from '../openapi';
import type { Auth } from '../plugins/auth';
import { storableText } from '../params';
import { HttpProblem, parseOrThrow } from '../problem';
import type { JobAcceptor } from './accept-jobs';
import { idempotencyKeyValue, jobLink, prepareJob, queueFor, type StoredResponse } from './job-intake';
import { syncLink, syncStatusView } from './sync';

export interface JobRoutesDeps {
  config: Config;
  db: Db;
  /** The registry's kinds: one enqueue route each. */
  kinds: readonly AnyJobKind[];
  /** A queue per kind, by name. */
  queues: Readonly<Record<string, Queue>>;
  /** The producer connections: each queue's, for its jobs and its tenants' capacity counters. */
  redis: RedisConnections;
  auth: Auth;
  /** Accepts the jobs the enqueue routes pass validation (or refuses them all while intake is closed). */
  acceptor: JobAcceptor;
}

// drizzle's message for a failed statement: the SQL text and its parameters, for logs only.
const SQL_IN_MESSAGE = /^Failed query:[\s\S]*$/;
// Our failedReason is `<CODE>: <message>` for typed errors (see the worker's unrecoverable()).
const CODED_REASON = /^([A-Z][A-Z0-9_]{2,63}): ([\s\S]*)$/;

/** A failed attempt as producers see it: its code, message and whether it will be tried again; no stack, no SQL. */
export function publicJobError(job: Job, state: string) {
  if (!job.failedReason) return null;
  const coded = CODED_REASON.exec(job.failedReason);
  const message = (coded?.[2] ?? job.failedReason).replace(SQL_IN_MESSAGE, 'a database statement failed');
  return { code: coded?.[1] ?? 'UNEXPECTED', message, retryable: state !== 'failed' };
}

const idempotencyHeader = z.strictObject({ 'idempotency-key': idempotencyKeyValue.optional() });
export const jobParams = z.strictObject({ id: storableText(512) });

const isoOrNull = (ms: number | undefined) => (ms === undefined || ms === 0 ? null : new Date(ms).toISOString());

function sendStored(reply: FastifyReply, statusCode: number, stored: StoredResponse, replayed: boolean): FastifyReply {
  reply.code(statusCode).headers(stored.headers).type('application/json');
  if (replayed) reply.header('idempotent-replayed', 'true');
  // Canonical text: jsonb does not keep key order, and a replay must match the first answer byte for byte.
  return reply.send(canonicalJson(stored.body));
}

/** A job's producer-facing state: every tenant job is queued with a fair-share priority, so to its producer it is simply waiting. */
/** A BullMQ state as callers see it: a prioritized job is waiting (priorities are the fleet's fair-share business). */
export const producerState = (bullState: string) => (bullState === 'prioritized' ? 'waiting' : bullState);

function jobView(queue: string, job: Job, state: string) {
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

/** What is known of a tenant's job: its idempotency record, its BullMQ job and state while Redis retains it, its entity's sync status. */
export interface TenantJob {
  id: string;
  /** The queue, i.e. the job kind. */
  queue: string;
  /** When the job was accepted (its idempotency record's creation). */
  acceptedAt: Date;
  /** The BullMQ job and its state; undefined once retention removed it from Redis. */
  job: { job: Job; bullState: string } | undefined;
  sync: SyncStatusRow | undefined;
}

/**
 * Reads a job of the caller's tenant by id: 404 for an unknown job, 403 for another tenant's.
 * Both API versions answer from it.
 */
export function createJobReader({ db, queues, redis: connection }: Pick<JobRoutesDeps, 'db' | 'queues' | 'redis'>) {
  const redisOf = queueRedisCaller(connection);
  return async function readTenantJob(tenantId: string, id: string): Promise<TenantJob> {
    // Postgres holds each job's owner and queue for the idempotency TTL; past it the job is unknown here.
    const record = await pg(() => findIdempotencyRecordByJobId(db, id));
    if (record === undefined || queues[record.scope] === undefined) throw new HttpProblem(404, `No job "${id}"`);
    if (record.tenantId !== tenantId) throw new HttpProblem(403, `Job "${id}" belongs to another tenant`);
    const queue = record.scope;
    const redis = redisOf(queue);
    const [job, sync] = await Promise.all([redis(() => queueFor(queues, queue).getJob(id)), pg(() => findSyncStatusByJobId(db, tenantId, id))]);
    return { id, queue, acceptedAt: record.createdAt, job: job === undefined ? undefined : { job, bullState: await redis(() => job.getState()) }, sync };
  };
}

/**
 * Validates a request to enqueue a job of `kind` (the Idempotency-Key header, the body) and has
 * the acceptor accept it; throws the problem refusing it. Both API versions enqueue through it.
 */
export async function acceptJobRequest(
  kind: AnyJobKind,
  request: FastifyRequest,
  { auth, acceptor }: Pick<JobRoutesDeps, 'auth' | 'acceptor'>,
) {
  const { tenantId } = auth.principal(request);
  const header = parseOrThrow(idempotencyHeader, { 'idempotency-key': request.headers['idempotency-key'] }, 'The Idempotency-Key header')['idempotency-key'];
  const body = parseOrThrow(kind.requestSchema, request.body, 'The request body', 422);
  const prepared = prepareJob(kind, tenantId, body, header, request.id);
  const outcome = await acceptor.accept({ ...prepared, kind, tenantId });
  if (!outcome.accepted) throw outcome.problem;
  return { ...outcome, prepared };
}

export function registerJobRoutes(app: FastifyInstance, deps: JobRoutesDeps): void {
  const { kinds, auth } = deps;
  const readTenantJob = createJobReader(deps);

  for (const kind of kinds) {
    app.post(`/v1/jobs/${kind.name}`, { onRequest: auth.requireScope(kind.intake.requiredScope), schema: enqueueDocs(kind) }, async (request, reply) => {
      const { statusCode, stored, replayed } = await acceptJobRequest(kind, request, deps);
      return sendStored(reply, statusCode, stored, replayed);
    });
  }

  app.get('/v1/jobs/:id', { onRequest: auth.requireScope('jobs:read'), schema: docs.getJob }, async (request) => {
    const { id } = parseOrThrow(jobParams, request.params, 'The path');
    const { queue, acceptedAt, job, sync } = await readTenantJob(auth.principal(request).tenantId, id);
    const links = { self: jobLink(id), ...(sync === undefined ? {} : { sync: syncLink(sync.kind, sync.entityId) }) };
    if (job === undefined) {
      // Retention removed it from Redis; the stored status is what is left.
      return {
        id,
        queue,
        state: 'expired-from-queue',
        createdAt: acceptedAt.toISOString(),
        sync: sync === undefined ? null : syncStatusView(sync),
        links,
      };
    }
    return { ...jobView(queue, job.job, producerState(job.bullState)), links };
  });
}
