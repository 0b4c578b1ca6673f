import { backupRepository, type BackupRow, type Db } from '@jobfleet/db';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { keysetCursor } from '../cursor';
import { callPostgres } from '../dependencies';
import { docs } from '../openapi';
import type { Auth } from '../plugins/auth';
import { boundedInstant } from '../params';
import { HttpProblem, parseOrThrow } from '../problem';

export interface BackupRoutesDeps {
  db: Db;
  auth: Auth;
}

const MAX_PAGE = 100;

/** Keyset position of the last row of a page. */
const cursor = keysetCursor(z.object({ startedAt: boundedInstant, id: z.uuid() }));

const listQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(20),
  cursor: cursor.param,
});
const backupParams = z.strictObject({ id: z.uuid() });

const backupLink = (id: string) => `/v1/backups/${id}`;

/** The public view of a backups row. */
export function backupView(row: BackupRow) {
  return {
    id: row.id,
    definition: row.schedule,
    trigger: row.slot === null ? 'on-demand' : 'scheduled',
    slot: row.slot?.toISOString() ?? null,
    status: row.status,
    target: row.target,
    location: row.location,
    bytes: row.bytes,
    sha256: row.sha256,
    durationMs: row.finishedAt === null ? null : row.finishedAt.getTime() - row.startedAt.getTime(),
    error: row.error ?? null,
    restoreCheck: row.restoreCheck ?? null,
    requestedBy: row.tenantId,
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
    links: { self: backupLink(row.id), ...(row.jobId === null ? {} : { job: `/v1/jobs/${encodeURIComponent(row.jobId)}` }) },
  };
}

/** Backup runs, newest first; admin only (HTTP Basic or an admin-scoped key), as a dump holds every tenant. */
export function registerBackupRoutes(app: FastifyInstance, { db, auth }: BackupRoutesDeps): void {
  const onRequest = async (request: Parameters<Auth['requireOperator']>[0]): Promise<void> => {
    await auth.requireOperator(request);
  };

  app.get('/v1/backups', { onRequest, schema: docs.listBackups }, async (request) => {
    const query = parseOrThrow(listQuery, request.query, 'The query string');
    const { limit } = query;
    const after = query.cursor === undefined ? undefined : cursor.decode(query.cursor);
    // One extra row tells whether another page exists.
    const rows = await callPostgres(() =>
      backupRepository.list(db, { limit: limit + 1, cursor: after && { startedAt: new Date(after.startedAt), id: after.id } }),
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return { items: page.map(backupView), nextCursor: rows.length > limit && last ? cursor.encode({ startedAt: last.startedAt.toISOString(), id: last.id }) : null };
  });

  app.get('/v1/backups/:id', { onRequest, schema: docs.getBackup }, async (request) => {
    const { id } = parseOrThrow(backupParams, request.params, 'The path');
    const row = await callPostgres(() => backupRepository.get(db, id));
    if (row === undefined) throw new HttpProblem(404, `No backup "${id}"`);
    return backupView(row);
  });
}
