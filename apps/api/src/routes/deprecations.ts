import { DEPRECATED_USAGE_DAYS, deprecatedUsageRepository, type Db, type DeprecatedUsageRow } from '@jobfleet/db';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { callPostgres } from '../dependencies';
import { docs } from '../openapi';
import type { Auth } from '../plugins/auth';
import { parseOrThrow } from '../problem';

const DAY_MS = 24 * 3_600_000;
const deprecationsQuery = z.strictObject({ days: z.coerce.number().int().min(1).max(DEPRECATED_USAGE_DAYS).default(30) });

/** Rows of one key per route, as one entry per key with its routes. */
function byKey(rows: readonly DeprecatedUsageRow[]) {
  const keys = new Map<string, { keyId: string; tenantId: string; name: string; prefix: string; revokedAt: string | null; calls: number; lastSeen: string; routes: { route: string; calls: number; lastSeen: string }[] }>();
  for (const row of rows) {
    let key = keys.get(row.keyId);
    if (key === undefined) {
      // Rows come with each key's most recent call first.
      key = { keyId: row.keyId, tenantId: row.tenantId, name: row.keyName, prefix: row.keyPrefix, revokedAt: row.keyRevokedAt?.toISOString() ?? null, calls: 0, lastSeen: row.lastSeen.toISOString(), routes: [] };
      keys.set(row.keyId, key);
    }
    key.calls += row.count;
    if (row.lastSeen.toISOString() > key.lastSeen) key.lastSeen = row.lastSeen.toISOString();
    key.routes.push({ route: row.route, calls: row.count, lastSeen: row.lastSeen.toISOString() });
  }
  return [...keys.values()];
}

/**
 * `GET /v1/admin/deprecations`: which API keys called deprecated routes (every /v1 route) in the
 * last `days` UTC days, how often and how lately; fleet operators only, as it spans every tenant.
 * Each API process writes its counts every API_DEPRECATION_FLUSH_MS, so the newest calls show that late.
 */
export function registerDeprecationRoutes(app: FastifyInstance, { db, auth }: { db: Db; auth: Auth }): void {
  app.get(
    '/v1/admin/deprecations',
    {
      onRequest: auth.operatorOnly,
      schema: docs.deprecations,
    },
    async (request) => {
      const { days } = parseOrThrow(deprecationsQuery, request.query, 'The query string');
      const since = new Date(Date.now() - (days - 1) * DAY_MS).toISOString().slice(0, 10);
      const rows = await callPostgres(() => deprecatedUsageRepository.list(db, { sinceDay: since }));
      return { since, keys: byKey(rows) };
    },
  );
}
