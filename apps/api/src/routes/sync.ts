import { calendarSyncRequestSchema } from '@jobfleet/contracts';
import { RESERVATION_SYNC_KIND, type AnyJobKind } from '@jobfleet/kinds';
import { syncStatusRepository, type Db, type SyncStatusRow } from '@jobfleet/db';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { callPostgres } from '../dependencies';
import type { Auth } from '../plugins/auth';
import { storableText } from '../params';
import { HttpProblem, parseOrThrow } from '../problem';
import { docs } from '../openapi';

export interface SyncRoutesDeps {
  db: Db;
  auth: Auth;
  /** The registry's kinds: their sync kinds are what `/v1/sync/:kind` knows. */
  kinds: readonly AnyJobKind[];
}

// Reservations (the calendar-sync kind's entities) have a friendlier path of their own.
const RESERVATION_KIND = RESERVATION_SYNC_KIND;

const reservationParams = z.strictObject({ id: calendarSyncRequestSchema.shape.reservationId });
export const syncParams = z.strictObject({
  kind: storableText(64),
  entityId: storableText(200),
});

/** Where an entity's sync status is read; reservations have their own, friendlier path. */
export function syncLink(kind: string, entityId: string): string {
  const id = encodeURIComponent(entityId);
  return kind === RESERVATION_KIND ? `/v1/reservations/${id}/sync` : `/v1/sync/${encodeURIComponent(kind)}/${id}`;
}

/** The public view of a sync_status row (tenant and kind are implied by the request). */
export function syncStatusView(row: SyncStatusRow) {
  return {
    status: row.status,
    version: row.version,
    attempts: row.attempts,
    lastError: row.lastError ?? null,
    externalRef: row.externalRef,
    lastSyncedAt: row.lastSyncedAt?.toISOString() ?? null,
    updatedAt: row.updatedAt.toISOString(),
    jobId: row.jobId,
    links: {
      self: syncLink(row.kind, row.entityId),
      ...(row.jobId === null ? {} : { job: `/v1/jobs/${encodeURIComponent(row.jobId)}` }),
    },
  };
}

/** The sync kinds of the registry's kinds: what `/v1/sync/:kind` and `/v2/sync/:kind` know. */
export const syncKindsOf = (kinds: readonly AnyJobKind[]): ReadonlySet<string> => new Set(kinds.flatMap((kind) => (kind.syncKind === null ? [] : [kind.syncKind])));

/** Reads a tenant's sync status of an entity; 404 for none. */
export function createSyncReader(db: Db) {
  return async function findSyncStatus(tenantId: string, kind: string, entityId: string): Promise<SyncStatusRow> {
    const row = await callPostgres(() => syncStatusRepository.get(db, tenantId, kind, entityId));
    // Other tenants' rows are simply not in the caller's namespace: 404, not 403.
    if (row === undefined) throw new HttpProblem(404, `No sync status for ${kind} "${entityId}"`);
    return row;
  };
}

export function registerSyncRoutes(app: FastifyInstance, { db, auth, kinds }: SyncRoutesDeps): void {
  const syncKinds = syncKindsOf(kinds);
  const find = createSyncReader(db);

  app.get(
    '/v1/reservations/:id/sync',
    { onRequest: auth.requireScope('jobs:read'), schema: docs.reservationSync },
    async (request) => {
      const { id } = parseOrThrow(reservationParams, request.params, 'The path');
      const row = await find(auth.principal(request).tenantId, RESERVATION_KIND, id);
      return { reservationId: row.entityId, ...syncStatusView(row) };
    },
  );

  app.get(
    '/v1/sync/:kind/:entityId',
    { onRequest: auth.requireScope('jobs:read'), schema: docs.syncStatus },
    async (request) => {
      const { kind, entityId } = parseOrThrow(syncParams, request.params, 'The path');
      if (!syncKinds.has(kind)) throw new HttpProblem(404, `Unknown sync kind "${kind}"`);
      const row = await find(auth.principal(request).tenantId, kind, entityId);
      return { kind: row.kind, entityId: row.entityId, ...syncStatusView(row) };
    },
  );
}
