import { backupRepository, type BackupRow, type Db } from '@jobfleet/db';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { callPostgres } from '../dependencies';
import { docs } from '../openapi';
import type { Auth } from '../plugins/auth';
import { boundedInstant } from '../params';
import { HttpProblem, parseOrThrow } from '../problem';
import { opaqueCursor, pageOf, pageQuery } from '../cursor';

export interface BackupRoutesDeps {
  db: Db;
  auth: Auth;
}

/** Keyset position of the last row of a page. */
const backupCursor = opaqueCursor(z.object({ startedAt: boundedInstant, id: z.uuid() }));
const listQuery = pageQuery(backupCursor.param);
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

/** A page of backup runs, newest first, from a list's query string; 400 for a bad limit or cursor. */
export async function readBackupPage(db: Db, query: unknown): Promise<{ page: BackupRow[]; nextCursor: string | null; limit: number }> {
  const { limit, cursor } = parseOrThrow(listQuery, query, 'The query string');
  const after = cursor === undefined ? undefined : backupCursor.decode(cursor);
  const rows = await callPostgres(() => backupRepository.list(db, { limit: limit + 1, cursor: after && { startedAt: new Date(after.startedAt), id: after.id } }));
  return { ...pageOf(rows, limit, (row) => backupCursor.encode({ startedAt: row.startedAt.toISOString(), id: row.id })), limit };
}

/** A backup run by the id in a route's path; 400 for a malformed id, 404 for an unknown one. */
export async function readBackup(db: Db, params: unknown): Promise<BackupRow> {
  const { id } = parseOrThrow(backupParams, params, 'The path');
  const row = await callPostgres(() => backupRepository.get(db, id));
  if (row === undefined) throw new HttpProblem(404, `No backup "${id}"`);
  return row;
}

/** Backup runs, newest first; admin only (HTTP Basic or an admin-scoped key), as a dump holds every tenant. */
export function registerBackupRoutes(app: FastifyInstance, { db, auth }: BackupRoutesDeps): void {
  const onRequest = auth.operatorOnly;
  app.get('/v1/backups', { onRequest, schema: docs.listBackups }, async (request) => {
    const { page, nextCursor } = await readBackupPage(db, request.query);
    return { items: page.map(backupView), nextCursor };
  });

  app.get('/v1/backups/:id', { onRequest, schema: docs.getBackup }, async (request) => backupView(await readBackup(db, request.params)));
}
