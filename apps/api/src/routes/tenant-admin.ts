import { tenantExists, type ApiKeyPrincipal, type Db } from '@jobfleet/db';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { callPostgres } from '../dependencies';
import type { Auth } from '../plugins/auth';
import { HttpProblem, parseOrThrow } from '../problem';

// Tenant ids as the CLI creates them: no separators of our keys, no control characters.
export const tenantIdParam = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a tenant id: letters, digits, . _ - (at most 64)');

/**
 * For `/v1/admin/tenants/:id/…`: authorises the caller as admin of the tenant in the path (its own
 * `admin` key, or `fleet:admin`), which must exist (404 otherwise).
 */
export async function administeredTenant(request: FastifyRequest, { db, auth }: { db: Db; auth: Auth }): Promise<{ tenantId: string; principal: ApiKeyPrincipal }> {
  const { id } = parseOrThrow(z.looseObject({ id: tenantIdParam }), request.params, 'The path');
  const principal = await auth.requireTenantAdmin(request, id);
  if (!(await callPostgres(() => tenantExists(db, id)))) throw new HttpProblem(404, `No tenant "${id}"`);
  return { tenantId: id, principal };
}
