import type { Config } from '@jobfleet/config';
import { coerceError } from '@jobfleet/contracts';
import { adminAuditRepository, jobRepository, schema, type AdminAuditRow, type Db, type JobFilter, type JobRow, type JobState } from '@jobfleet/db';
import type { AnyJobKind } from '@jobfleet/kinds';
import type { RedisConnections, TenantCapacity } from '@jobfleet/queue';
import type { Job, Queue } from 'bullmq';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { opaqueCursor, pageOf, pageQuery } from '../cursor';
import { callPostgres as pg, queueRedisCaller } from '../dependencies';
import { adminAuditDocs, jobAdminDocs } from '../openapi';
import { boundedInstant, storableText } from '../params';
import { apiKeyActor, type AdminActor, type Auth } from '../plugins/auth';
import { HttpProblem, parseOrThrow } from '../problem';
import { queueFor } from './job-intake';
import { producerState } from './jobs';

export interface JobAdminRoutesDeps {
  config: Config;
  db: Db;
  auth: Auth;
  kinds: readonly AnyJobKind[];
  queues: Readonly<Record<string, Queue>>;
  redis: RedisConnections;
  /** A cancelled job gives its tenant's waiting-jobs count back. */
  capacity: TenantCapacity;
}

/**
 * Who acts, and on which jobs: an operator (fleet:admin or the Basic credentials) on every
 * tenant's (`tenantId` null), or a tenant's admin key on its own tenant's only.
 */
interface AdminScope {
  actor: AdminActor;
  tenantId: string | null;
}

const MAX_PAGE = 100;
const tenantParams = z.object({ id: storableText(64) });

/** Keyset position of a page's last job: newest first by (created, kind, id). */
// A cursor is the client's to send back: its text fields are held to what Postgres can store.
const jobCursor = opaqueCursor(z.object({ createdAt: boundedInstant, kind: storableText(64), id: storableText(512) }));
/** Keyset position of a page's last audit entry: newest first by id. */
const auditCursor = opaqueCursor(z.object({ id: z.number().int().positive() }));

/** The jobs' Redis states an action starts from (prioritized is waiting to the caller), and where it leaves the job. */
const ACTIONS = {
  retry: { from: ['failed'], to: 'waiting' },
  cancel: { from: ['waiting', 'prioritized', 'delayed'], to: 'cancelled' },
  promote: { from: ['delayed'], to: 'waiting' },
} as const satisfies Record<string, { from: readonly string[]; to: JobState }>;
type ActionName = keyof typeof ACTIONS;

// A bulk retry talks to Redis this many jobs at a time.
const BULK_RETRY_CONCURRENCY = 20;

function attemptView(row: Awaited<ReturnType<typeof jobRepository.attempts>>[number]) {
  return {
    run: row.run,
    attempt: row.attempt,
    workerId: row.workerId,
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
    outcome: row.outcome ?? 'running',
    error: row.errorCode === null ? null : { code: row.errorCode, message: row.errorMessage ?? '' },
  };
}

function auditView(row: AdminAuditRow) {
  return {
    id: row.id,
    at: row.at.toISOString(),
    actor: row.actor,
    actorTenantId: row.actorTenantId,
    action: row.action,
    tenantId: row.tenantId,
    target: row.target,
    filter: row.filter,
    detail: row.detail,
  };
}


/**
 * The job admin API, served from Postgres (`jobs`, `job_attempts`, `admin_audit`) so that jobs
 * Redis no longer retains are still listed and found; the actions act on the jobs in Redis.
 * Every route exists fleet-wide under /v1/admin (operators) and per tenant under
 * /v1/admin/tenants/:id (that tenant's admin key, or an operator's key); a job of another tenant
 * is unknown there (404), so job ids tell nothing.
 */
export function registerJobAdminRoutes(app: FastifyInstance, { config, db, auth, kinds, queues, redis, capacity }: JobAdminRoutesDeps): void {
  const kindNames = kinds.map((kind) => kind.name) as [string, ...string[]];
  const redisOf = queueRedisCaller(redis);
  const kindSchema = z.enum(kindNames);
  const jobParams = z.object({ kind: storableText(64), jobId: storableText(512) });

  const filterFields = {
    kind: kindSchema.optional(),
    state: z.enum(schema.jobStates).optional(),
    createdFrom: boundedInstant.optional(),
    createdTo: boundedInstant.optional(),
    id: storableText(512).optional(),
    idempotencyKey: storableText(255).optional(),
    businessKey: storableText(512).optional(),
  };
  const page = pageQuery(jobCursor.param, MAX_PAGE).shape;
  const fleetListQuery = z.strictObject({ ...filterFields, tenant: storableText(64).optional(), ...page });
  const tenantListQuery = z.strictObject({ ...filterFields, ...page });
  const retryFilter = { kind: kindSchema.optional(), createdFrom: boundedInstant.optional(), createdTo: boundedInstant.optional() };
  const bulkOptions = {
    dryRun: z.boolean().default(false),
    max: z.number().int().min(1).max(config.api.bulkRetryMax).optional(),
  };
  const fleetBulkBody = z.strictObject({ filter: z.strictObject({ ...retryFilter, tenant: storableText(64).optional() }).default({}), ...bulkOptions });
  const tenantBulkBody = z.strictObject({ filter: z.strictObject(retryFilter).default({}), ...bulkOptions });
  const auditQuery = { action: storableText(64).optional(), ...pageQuery(auditCursor.param, MAX_PAGE).shape };
  const fleetAuditQuery = z.strictObject({ ...auditQuery, tenant: storableText(64).optional() });
  const tenantAuditQuery = z.strictObject(auditQuery);

  // Each scope's routes authenticate in `onRequest`; their handlers read who acts with `scopeOf`.
  const tenantOf = (request: FastifyRequest) => parseOrThrow(tenantParams, request.params, 'The path').id;
  const scopes = {
    fleet: {
      prefix: '/v1/admin',
      onRequest: auth.operatorOnly,
      scopeOf: (request: FastifyRequest): AdminScope => ({ actor: auth.operator(request), tenantId: null }),
    },
    tenant: {
      prefix: '/v1/admin/tenants/:id',
      onRequest: async (request: FastifyRequest): Promise<void> => {
        await auth.requireTenantAdmin(request, tenantOf(request));
      },
      scopeOf: (request: FastifyRequest): AdminScope => ({ actor: apiKeyActor(auth.principal(request)), tenantId: tenantOf(request) }),
    },
  } as const;

  const jobPath = (scope: AdminScope, row: Pick<JobRow, 'kind' | 'id'>) =>
    `${scope.tenantId === null ? '/v1/admin' : `/v1/admin/tenants/${encodeURIComponent(scope.tenantId)}`}/jobs/${row.kind}/${encodeURIComponent(row.id)}`;

  const jobView = (scope: AdminScope, row: JobRow) => ({
    kind: row.kind,
    id: row.id,
    tenantId: row.tenantId,
    state: row.state,
    attempts: row.attempts,
    businessKey: row.businessKey,
    idempotencyKey: row.idempotencyKey,
    lastError: row.lastError ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    links: { self: jobPath(scope, row) },
  });

  /** The job in this scope, or a 404 (also for another tenant's job). */
  async function ownedJob(scope: AdminScope, request: FastifyRequest): Promise<JobRow> {
    const { kind, jobId } = parseOrThrow(jobParams, request.params, 'The path');
    const row = kindNames.includes(kind) ? await pg(() => jobRepository.get(db, kind, jobId)) : undefined;
    if (row === undefined || (scope.tenantId !== null && row.tenantId !== scope.tenantId)) throw new HttpProblem(404, `No ${kind} job "${jobId}"`);
    return row;
  }

  function filterOf(scope: AdminScope, query: { tenant?: string | undefined; createdFrom?: string | undefined; createdTo?: string | undefined } & Omit<JobFilter, 'tenantId' | 'createdFrom' | 'createdTo'>): JobFilter {
    const { tenant, createdFrom, createdTo, ...rest } = query;
    const tenantId = scope.tenantId ?? tenant;
    return {
      ...rest,
      ...(tenantId === undefined ? {} : { tenantId }),
      ...(createdFrom === undefined ? {} : { createdFrom: new Date(createdFrom) }),
      ...(createdTo === undefined ? {} : { createdTo: new Date(createdTo) }),
    };
  }

  /** The job in Redis and its state there; 410 when Redis no longer holds it. */
  async function liveJob(row: JobRow): Promise<{ job: Job; state: string }> {
    const call = redisOf(row.kind);
    const job = await call(() => queueFor(queues, row.kind).getJob(row.id));
    if (job === undefined) {
      throw new HttpProblem(410, `Job "${row.id}" is no longer in the queue (removed by retention or cancelled; last known state ${row.state}); submit its request again instead`, {
        type: '/problems/job-expired-from-queue',
        extensions: { state: row.state },
      });
    }
    return { job, state: await call(() => job.getState()) };
  }

  const wrongState = (action: ActionName, row: JobRow, state: string) =>
    new HttpProblem(409, `Job "${row.id}" is ${producerState(state)}; ${action} takes a job that is ${ACTIONS[action].from.filter((s) => s !== 'prioritized').join(' or ')}`, {
      type: '/problems/job-state-conflict',
      extensions: { state: producerState(state) },
    });

  /** Carries out `action` on the job in Redis; the state it left, or the 409 of a job in another state (also one that moved meanwhile). */
  async function actInRedis(action: ActionName, row: JobRow): Promise<string> {
    const { job, state } = await liveJob(row);
    if (!(ACTIONS[action].from as readonly string[]).includes(state)) throw wrongState(action, row, state);
    const call = redisOf(row.kind);
    try {
      if (action === 'retry') {
        // A fresh set of attempts: the job failed for good, so its old count would leave it at most one.
        await call(() => job.retry('failed', { resetAttemptsMade: true }));
      } else if (action === 'promote') {
        await call(() => job.promote());
      } else {
        await call(() => job.remove());
      }
    } catch (error) {
      // BullMQ refuses a job that moved on since (a worker took it, its delay ended): say so.
      const now = await call(() => job.getState());
      if (now !== state) throw wrongState(action, row, now);
      throw error;
    }
    // A cancelled job's pending entry would hold the tenant's waiting quota until reconciled.
    const { tenantId } = row;
    if (action === 'cancel' && tenantId !== null) await call(() => capacity.leave({ kind: row.kind, tenantId, jobId: row.id }, true));
    return state;
  }

  async function act(action: ActionName, scope: AdminScope, row: JobRow) {
    const from = await actInRedis(action, row);
    const to = ACTIONS[action].to;
    await pg(() =>
      jobRepository.recordAdminAction(db, {
        jobs: [row],
        state: to,
        audit: { ...scope.actor, action: `job.${action}`, tenantId: row.tenantId, target: { kind: row.kind, jobId: row.id }, detail: { from: producerState(from), to } },
      }),
    );
    return { ...jobView(scope, { ...row, state: to }), previousState: producerState(from) };
  }

  async function bulkRetry(scope: AdminScope, body: z.output<typeof fleetBulkBody>) {
    const filter: JobFilter = { ...filterOf(scope, body.filter), state: 'failed' };
    const matched = await pg(() => jobRepository.count(db, filter));
    const cap = body.max ?? config.api.bulkRetryMax;
    if (body.dryRun) return { dryRun: true, matched, max: cap };
    if (matched > cap) {
      throw new HttpProblem(422, `The filter matches ${matched} failed jobs, more than the ${cap} one bulk retry may retry; narrow the filter${cap < config.api.bulkRetryMax ? ` or raise max (up to ${config.api.bulkRetryMax})` : ''}`, {
        type: '/problems/bulk-retry-over-cap',
        extensions: { matched, max: cap },
      });
    }
    const rows = await pg(() => jobRepository.list(db, filter, { limit: cap }));
    const retried: JobRow[] = [];
    const skipped: { kind: string; jobId: string; reason: string }[] = [];
    // Redis failing part way: what was retried is still recorded, then the failure answered.
    let failure: Error | undefined;
    for (let start = 0; start < rows.length && failure === undefined; start += BULK_RETRY_CONCURRENCY) {
      await Promise.all(
        rows.slice(start, start + BULK_RETRY_CONCURRENCY).map(async (row) => {
          try {
            await actInRedis('retry', row);
            retried.push(row);
          } catch (error) {
            if (error instanceof HttpProblem) skipped.push({ kind: row.kind, jobId: row.id, reason: error.message });
            else failure ??= coerceError(error);
          }
        }),
      );
    }
    const audit = {
      ...scope.actor,
      action: 'jobs.bulk-retry',
      tenantId: scope.tenantId ?? body.filter.tenant ?? null,
      filter: { ...body.filter, state: 'failed' },
      target: { jobs: retried.map((row) => ({ kind: row.kind, jobId: row.id })) },
      detail: { matched, retried: retried.length, skipped: skipped.length, max: cap },
    };
    await pg(() => jobRepository.recordAdminAction(db, { jobs: retried, state: 'waiting', audit }));
    if (failure !== undefined) throw failure;
    return { dryRun: false, matched, retried: retried.length, skipped };
  }

  for (const [name, scope] of Object.entries(scopes)) {
    const fleet = name === 'fleet';
    const docs = jobAdminDocs({ fleet, list: fleet ? fleetListQuery : tenantListQuery, bulk: fleet ? fleetBulkBody : tenantBulkBody, bulkRetryMax: config.api.bulkRetryMax });

    app.get(`${scope.prefix}/jobs`, { onRequest: scope.onRequest, schema: docs.list }, async (request) => {
      const resolved = scope.scopeOf(request);
      const query: z.output<typeof fleetListQuery> = parseOrThrow(fleet ? fleetListQuery : tenantListQuery, request.query, 'The query string');
      const { limit, cursor, ...filter } = query;
      const after = cursor === undefined ? undefined : jobCursor.decode(cursor);
      const rows = await pg(() =>
        jobRepository.list(db, filterOf(resolved, filter), { limit: limit + 1, cursor: after && { ...after, createdAt: new Date(after.createdAt) } }),
      );
      const { page: items, nextCursor } = pageOf(rows, limit, (last) => jobCursor.encode({ createdAt: last.createdAt.toISOString(), kind: last.kind, id: last.id }));
      return { items: items.map((row) => jobView(resolved, row)), nextCursor };
    });

    app.get(`${scope.prefix}/jobs/:kind/:jobId`, { onRequest: scope.onRequest, schema: docs.get }, async (request) => {
      const resolved = scope.scopeOf(request);
      const row = await ownedJob(resolved, request);
      const [attempts, job] = await Promise.all([
        pg(() => jobRepository.attempts(db, row.kind, row.id)),
        redisOf(row.kind)(() => queueFor(queues, row.kind).getJob(row.id)),
      ]);
      const queueState = job === undefined ? 'expired-from-queue' : producerState(await redisOf(row.kind)(() => job.getState()));
      return { ...jobView(resolved, row), queueState, attemptHistory: attempts.map(attemptView) };
    });

    for (const action of Object.keys(ACTIONS) as ActionName[]) {
      app.post(`${scope.prefix}/jobs/:kind/:jobId/${action}`, { onRequest: scope.onRequest, schema: docs.actions[action] }, async (request) => {
        const resolved = scope.scopeOf(request);
        return act(action, resolved, await ownedJob(resolved, request));
      });
    }

    app.post(`${scope.prefix}/jobs/retry`, { onRequest: scope.onRequest, schema: docs.bulkRetry }, async (request) => {
      const resolved = scope.scopeOf(request);
      return bulkRetry(resolved, parseOrThrow(fleet ? fleetBulkBody : tenantBulkBody, request.body ?? {}, 'The request body', 422));
    });

    app.get(`${scope.prefix}/audit`, { onRequest: scope.onRequest, schema: adminAuditDocs(fleet, fleet ? fleetAuditQuery : tenantAuditQuery) }, async (request) => {
      const resolved = scope.scopeOf(request);
      // A tenant's query has no tenant field: its scope says which.
      const query: z.output<typeof fleetAuditQuery> = parseOrThrow(fleet ? fleetAuditQuery : tenantAuditQuery, request.query, 'The query string');
      const tenantId = resolved.tenantId ?? query.tenant;
      const before = query.cursor === undefined ? undefined : auditCursor.decode(query.cursor);
      const rows = await pg(() =>
        adminAuditRepository.list(db, {
          limit: query.limit + 1,
          ...(tenantId === undefined ? {} : { tenantId }),
          ...(query.action === undefined ? {} : { action: query.action }),
          ...(before === undefined ? {} : { beforeId: before.id }),
        }),
      );
      const { page: items, nextCursor } = pageOf(rows, query.limit, (last) => auditCursor.encode({ id: last.id }));
      return { items: items.map(auditView), nextCursor };
    });
  }
}
