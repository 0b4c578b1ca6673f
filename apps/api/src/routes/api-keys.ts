import {
  API_KEY_SCOPES,
  ApiKeyError,
  apiKeyExpirySchema,
  apiKeyNameSchema,
  createApiKey,
  findApiKey,
  listApiKeys,
  revokeApiKey,
  rotateApiKey,
  rotationGraceSecondsSchema,
  type ApiKeyInfo,
  type ApiKeyPrincipal,
  type Db,
} from '@jobfleet/db';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { callPostgres as pg } from '../dependencies';
import { apiKeyDocs } from '../openapi';
import { boundedInstant, storableText } from '../params';
import type { Auth } from '../plugins/auth';
import { HttpProblem, parseOrThrow } from '../problem';
import { administeredTenant } from './tenant-admin';

const keyParams = z.looseObject({ keyId: storableText(100) });
const createBody = z.strictObject({
  name: apiKeyNameSchema,
  // Repeats are harmless and dropped.
  scopes: z
    .array(z.enum(API_KEY_SCOPES))
    .min(1)
    .max(API_KEY_SCOPES.length * 2)
    .transform((scopes) => [...new Set(scopes)]),
  expiresAt: boundedInstant
    .transform((at) => new Date(at))
    .pipe(apiKeyExpirySchema)
    .optional(),
});
const rotateBody = z.strictObject({ graceSeconds: rotationGraceSecondsSchema.optional() });
const docs = apiKeyDocs({ create: createBody, rotate: rotateBody });

/**
 * A `fleet:admin` key reaches every tenant, so only a `fleet:admin` caller may make one, or rotate
 * (which makes one) or revoke one: a tenant's `admin` would otherwise grant itself the fleet.
 */
function assertMayManage(caller: ApiKeyPrincipal, scopes: readonly string[]): void {
  if (scopes.includes('fleet:admin') && !caller.scopes.includes('fleet:admin')) {
    throw new HttpProblem(403, 'Only a "fleet:admin" key may create, rotate or revoke a key with the "fleet:admin" scope', {
      type: '/problems/scope-escalation',
    });
  }
}

/**
 * `/v1/admin/tenants/:id/api-keys…`: a tenant's keys, listed without their secrets, created and
 * rotated (the plaintext is in that one answer only), revoked. A tenant's `admin` key manages its
 * own tenant's, `fleet:admin` any tenant's.
 */
export function registerApiKeyRoutes(app: FastifyInstance, { db, auth }: { db: Db; auth: Auth }): void {
  const base = '/v1/admin/tenants/:id/api-keys';

  /** The tenant's key named in the path: another tenant's answers 404 like an unknown one. */
  async function keyOf(request: FastifyRequest, tenantId: string): Promise<ApiKeyInfo> {
    const { keyId } = parseOrThrow(keyParams, request.params, 'The path');
    const key = await pg(() => findApiKey(db, keyId, tenantId));
    if (key === null) throw new HttpProblem(404, `No API key "${keyId}" in tenant "${tenantId}"`);
    return key;
  }

  app.get(base, { schema: docs.list }, async (request) => {
    const { tenantId } = await administeredTenant(request, { db, auth });
    return { tenantId, items: await pg(() => listApiKeys(db, tenantId)) };
  });

  app.post(base, { schema: docs.create }, async (request, reply) => {
    const { tenantId, principal } = await administeredTenant(request, { db, auth });
    const body = parseOrThrow(createBody, request.body, 'The request body', 422);
    assertMayManage(principal, body.scopes);
    return reply.code(201).send(await pg(() => createApiKey(db, { tenantId, ...body })));
  });

  app.post(`${base}/:keyId/rotate`, { schema: docs.rotate }, async (request, reply) => {
    const { tenantId, principal } = await administeredTenant(request, { db, auth });
    const key = await keyOf(request, tenantId);
    // The body is optional: an empty POST takes the default grace.
    const body = parseOrThrow(rotateBody, request.body ?? {}, 'The request body', 422);
    assertMayManage(principal, key.scopes);
    const rotated = await pg(() => rotateApiKey(db, key.id, body.graceSeconds)).catch((error: unknown) => {
      // A revoked, expired or already replaced key is the client's mistake: 409 with the reason.
      throw error instanceof ApiKeyError ? new HttpProblem(error.status, error.message, { type: '/problems/api-key' }) : error;
    });
    return reply.code(201).send({ ...rotated.key, previous: rotated.previous });
  });

  app.delete(`${base}/:keyId`, { schema: docs.revoke }, async (request, reply) => {
    const { tenantId, principal } = await administeredTenant(request, { db, auth });
    const key = await keyOf(request, tenantId);
    assertMayManage(principal, key.scopes);
    // Revoking a revoked key changes nothing and answers the same.
    await pg(() => revokeApiKey(db, key.id));
    return reply.code(204).send();
  });
}
