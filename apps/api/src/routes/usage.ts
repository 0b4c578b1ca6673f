import type { Db, TenantLimitsCache } from '@jobfleet/db';
import type { AnyJobKind } from '@jobfleet/kinds';
import { nextQuotaDay, quotaDay, type RedisConnections, type TenantCapacity } from '@jobfleet/queue';
import type { FastifyInstance } from 'fastify';
import { callPostgres as pg, queueRedisCaller } from '../dependencies';
import { docs } from '../openapi';
import type { Auth } from '../plugins/auth';
import { administeredTenant } from './tenant-admin';

export interface UsageRoutesDeps {
  db: Db;
  auth: Auth;
  kinds: readonly AnyJobKind[];
  /** Each kind's counters are on its queue's Redis. */
  redis: RedisConnections;
  capacity: TenantCapacity;
  limits: TenantLimitsCache;
}

/** `GET /v1/usage` (a tenant's own) and `GET /v1/admin/tenants/:id/usage` (its admin, or fleet:admin). */
export function registerUsageRoutes(app: FastifyInstance, { db, auth, kinds, redis: connection, capacity, limits }: UsageRoutesDeps): void {
  const redisOf = queueRedisCaller(connection);

  async function usageOf(tenantId: string) {
    const now = Date.now();
    const tenantLimits = await pg(() => limits.limitsOf(tenantId));
    const perKind = await Promise.all(
      kinds.map(async (kind) => {
        const used = await redisOf(kind.name)(() => capacity.usage(kind.name, tenantId, now));
        return [kind.name, { ...used, ...tenantLimits.quotas(kind.name) }] as const;
      }),
    );
    return {
      tenantId,
      tier: tenantLimits.tier,
      day: quotaDay(now),
      dayResetsAt: nextQuotaDay(now).toISOString(),
      requests: { requestsPerMinute: tenantLimits.requestsPerMinute, keyRequestsPerMinute: tenantLimits.keyRequestsPerMinute },
      kinds: Object.fromEntries(perKind),
    };
  }

  app.get('/v1/usage', { onRequest: auth.requireScope('jobs:read'), schema: docs.usage }, (request) => usageOf(auth.principal(request).tenantId));

  app.get('/v1/admin/tenants/:id/usage', { schema: docs.tenantUsage }, async (request) => usageOf((await administeredTenant(request, { db, auth })).tenantId));
}
