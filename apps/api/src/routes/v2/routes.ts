import { syncStatusRepository, type Db, type SyncStatusRow } from '@jobfleet/db';
import { RESERVATION_SYNC_KIND } from '@jobfleet/kinds';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { opaqueCursor, pageOf, pageQuery } from '../../cursor';
import { callPostgres } from '../../dependencies';
import type { Successors } from '../../deprecation';
import { v2BatchDocs, v2Docs, v2EnqueueDocs } from './docs';
import { storableText } from '../../params';
import { HttpProblem, parseOrThrow, requestPath } from '../../problem';
import { backupView, readBackup, readBackupPage } from '../backups';
import { createBatchIntake, retryAfterOf, type BatchItemOutcome } from '../batch';
import { acceptJobRequest, createJobReader, jobParams, type JobRoutesDeps } from '../jobs';
import { createSyncReader, syncKindsOf, syncParams, syncStatusView } from '../sync';
import { acceptedJobResource, factsOfTenantJob, jobLinkV2, jobResource, syncLinkV2 } from './job-resource';

// /v2: the same domain code as /v1 (the acceptor, the readers), presented as resources: one Job
// shape with a stable status, lists paginated by cursor with a `next` link, RFC 9457 problems
// with `instance` and field errors as JSON pointers. Each route says which /v1 route it succeeds.

interface V2RoutesDeps extends JobRoutesDeps {
  /** Where each /v1 route's successor-version link points. */
  successors: Successors;
}

/** A page's links: itself, and the next page while there is one. */
function pageLinks(request: FastifyRequest, limit: number, nextCursor: string | null) {
  const path = requestPath(request);
  return { self: request.url, next: nextCursor === null ? null : `${path}?${new URLSearchParams({ limit: String(limit), cursor: nextCursor }).toString()}` };
}

function syncResource(row: SyncStatusRow) {
  const { links: _v1Links, ...view } = syncStatusView(row);
  return { kind: row.kind, entityId: row.entityId, ...view, links: { self: syncLinkV2(row.kind, row.entityId), ...(row.jobId === null ? {} : { job: jobLinkV2(row.jobId) }) } };
}

const backupResource = (row: Parameters<typeof backupView>[0]) => ({
  ...backupView(row),
  links: { self: `/v2/backups/${row.id}`, ...(row.jobId === null ? {} : { job: jobLinkV2(row.jobId) }) },
});

// A cursor is the client's to send back: its entity id is held to what Postgres can store, as the path's is.
const syncCursor = opaqueCursor(z.object({ entityId: syncParams.shape.entityId }));
const syncListQuery = pageQuery(syncCursor.param);
const syncKindParams = z.strictObject({ kind: storableText(64) });

function registerV2JobRoutes(app: FastifyInstance, deps: V2RoutesDeps): void {
  const { kinds, auth, successors } = deps;
  const readTenantJob = createJobReader(deps);
  const batch = createBatchIntake(deps);

  /** A batch job's result: the job as accepted, or the problem refusing it, its instance the job in the request. */
  const batchResult = (request: FastifyRequest, tenantId: string, kind: string) => (outcome: BatchItemOutcome) => {
    if ('problem' in outcome) {
      const instance = `${requestPath(request)}#/jobs/${outcome.index}`;
      return { index: outcome.index, status: outcome.status, idempotencyKey: outcome.idempotencyKey, problem: outcome.problem.toRfc9457(instance), ...retryAfterOf(outcome.problem) };
    }
    const job = acceptedJobResource({ id: outcome.jobId, kind, tenantId, idempotencyKey: outcome.idempotencyKey, sync: outcome.sync });
    return { index: outcome.index, status: outcome.status, replayed: outcome.replayed, job };
  };

  for (const kind of kinds) {
    const path = `/v2/jobs/${kind.name}`;
    app.post(path, { onRequest: auth.requireScope(kind.intake.requiredScope), schema: v2EnqueueDocs(kind) }, async (request, reply) => {
      const { statusCode, replayed, prepared } = await acceptJobRequest(kind, request, deps);
      const { tenantId } = auth.principal(request);
      const job = acceptedJobResource({ id: prepared.jobId, kind: kind.name, tenantId, idempotencyKey: prepared.idempotencyKey, sync: prepared.sync });
      reply.code(statusCode).header('location', job.links.self);
      if (replayed) reply.header('idempotent-replayed', 'true');
      return job;
    });
    successors.add(`/v1/jobs/${kind.name}`, path);

    app.post(
      `${path}/batch`,
      { onRequest: auth.requireScope(kind.intake.requiredScope), bodyLimit: batch.limits.bodyLimitBytes, schema: v2BatchDocs(kind, batch.bodySchema(kind), batch.limits) },
      async (request) => ({ results: (await batch.acceptBatch(kind, request)).map(batchResult(request, auth.principal(request).tenantId, kind.name)) }),
    );
    successors.add(`/v1/jobs/${kind.name}/batch`, `${path}/batch`);
  }

  app.get('/v2/jobs/:id', { onRequest: auth.requireScope('jobs:read'), schema: v2Docs.getJob }, async (request) => {
    const { id } = parseOrThrow(jobParams, request.params, 'The path');
    const { tenantId } = auth.principal(request);
    return jobResource(factsOfTenantJob(tenantId, await readTenantJob(tenantId, id)));
  });
  successors.add('/v1/jobs/:id', '/v2/jobs/:id');
}

function registerV2SyncRoutes(app: FastifyInstance, { db, auth, kinds, successors }: V2RoutesDeps): void {
  const syncKinds = syncKindsOf(kinds);
  const findSyncStatus = createSyncReader(db);
  const knownKind = (kind: string) => {
    if (!syncKinds.has(kind)) throw new HttpProblem(404, `Unknown sync kind "${kind}"`);
  };

  app.get('/v2/sync/:kind', { onRequest: auth.requireScope('jobs:read'), schema: v2Docs.listSync }, async (request) => {
    const { kind } = parseOrThrow(syncKindParams, request.params, 'The path');
    const { limit, cursor } = parseOrThrow(syncListQuery, request.query, 'The query string');
    knownKind(kind);
    const after = cursor === undefined ? undefined : syncCursor.decode(cursor);
    const { tenantId } = auth.principal(request);
    const rows = await callPostgres(() => syncStatusRepository.list(db, { tenantId, kind, afterEntityId: after?.entityId, limit: limit + 1 }));
    const { page, nextCursor } = pageOf(rows, limit, (row) => syncCursor.encode({ entityId: row.entityId }));
    return { items: page.map(syncResource), links: pageLinks(request, limit, nextCursor) };
  });

  app.get('/v2/sync/:kind/:entityId', { onRequest: auth.requireScope('jobs:read'), schema: v2Docs.getSync }, async (request) => {
    const { kind, entityId } = parseOrThrow(syncParams, request.params, 'The path');
    knownKind(kind);
    return syncResource(await findSyncStatus(auth.principal(request).tenantId, kind, entityId));
  });
  successors.add('/v1/sync/:kind/:entityId', '/v2/sync/:kind/:entityId');
  successors.add('/v1/reservations/:id/sync', `/v2/sync/${RESERVATION_SYNC_KIND}/:id`);
}

function registerV2BackupRoutes(app: FastifyInstance, { db, auth, successors }: { db: Db; auth: V2RoutesDeps['auth']; successors: Successors }): void {
  // Fleet-wide operations only (HTTP Basic or a fleet:admin key), as a dump holds every tenant.
  const onRequest = auth.operatorOnly;
  app.get('/v2/backups', { onRequest, schema: v2Docs.listBackups }, async (request) => {
    const { page, nextCursor, limit } = await readBackupPage(db, request.query);
    return { items: page.map(backupResource), links: pageLinks(request, limit, nextCursor) };
  });
  app.get('/v2/backups/:id', { onRequest, schema: v2Docs.getBackup }, async (request) => backupResource(await readBackup(db, request.params)));
  successors.add('/v1/backups', '/v2/backups');
  successors.add('/v1/backups/:id', '/v2/backups/:id');
}

/** Every /v2 route, each recording the /v1 route it succeeds. */
export function registerV2Routes(app: FastifyInstance, deps: V2RoutesDeps): void {
  registerV2JobRoutes(app, deps);
  registerV2SyncRoutes(app, deps);
  registerV2BackupRoutes(app, deps);
}
