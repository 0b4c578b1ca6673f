import { tenantLimitChangeSchema, type Config } from '@jobfleet/config';
import { tenantLimitsRepository, type Db } from '@jobfleet/db';
import type { AnyJobKind } from '@jobfleet/kinds';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { callPostgres as pg } from '../dependencies';
import { tenantLimitsDoc } from '../openapi';
import { storableText } from '../params';
import type { Auth } from '../plugins/auth';
import { HttpProblem, parseOrThrow } from '../problem';

export interface TenantLimitRoutesDeps {
  config: Config;
  db: Db;
  auth: Auth;
  /** The registry's kinds: the effective quotas are listed for each, and overrides may name only them. */
  kinds: readonly AnyJobKind[];
}

const params = z.strictObject({ id: storableText(64) });

/**
 * `/v1/admin/tenants/:id/limits`: a tenant's tier and limit overrides. Its own `admin` key may read
 * them; only `fleet:admin` changes them, so a tenant cannot raise its own limits. A change reaches
 * every replica within the limits cache time (TENANT_LIMITS_CACHE_SECONDS).
 */
export function registerTenantLimitRoutes(app: FastifyInstance, { config, db, auth, kinds }: TenantLimitRoutesDeps): void {
  const path = '/v1/admin/tenants/:id/limits';
  const kindNames = kinds.map((kind) => kind.name);
  const changeSchema = tenantLimitChangeSchema(config.tenants.tiers, kindNames);

  async function view(id: string) {
    const limits = await pg(() => tenantLimitsRepository.describe(db, config.tenants, id, kindNames));
    if (limits === undefined) throw new HttpProblem(404, `No tenant "${id}"`);
    return limits;
  }

  app.get(path, { schema: tenantLimitsDoc() }, async (request) => {
    const { id } = parseOrThrow(params, request.params, 'The path');
    await auth.requireTenantAdmin(request, id);
    return view(id);
  });

  app.put(path, { schema: tenantLimitsDoc(changeSchema) }, async (request) => {
    const { id } = parseOrThrow(params, request.params, 'The path');
    const principal = await auth.requireTenantAdmin(request, id);
    if (!principal.scopes.includes('fleet:admin')) {
      throw new HttpProblem(403, 'Only a fleet operator ("fleet:admin") changes a tenant\'s limits; a tenant\'s "admin" key may read them');
    }
    const change = parseOrThrow(changeSchema, request.body, 'The request body', 422);
    if (!(await pg(() => tenantLimitsRepository.update(db, id, change)))) throw new HttpProblem(404, `No tenant "${id}"`);
    return view(id);
  });
}
