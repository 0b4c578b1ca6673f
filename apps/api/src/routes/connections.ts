import { isValidCuit } from '@jobfleet/contracts';
import {
  ConnectionError,
  afipIssuerRepository,
  calendarAccessOf,
  googleConnectionRepository,
  serviceAccountCredential,
  serviceAccountKeySchema,
  type Db,
  type GoogleCredential,
} from '@jobfleet/db';
import type { Keyring } from '@jobfleet/secrets';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { callPostgres as pg } from '../dependencies';
import { connectionDoc } from '../openapi';
import { storableText } from '../params';
import type { Auth } from '../plugins/auth';
import { HttpProblem, parseOrThrow } from '../problem';
import { administeredTenant, tenantIdParam as tenantId } from './tenant-admin';

export interface ConnectionRoutesDeps {
  db: Db;
  keyring: Keyring;
  auth: Auth;
  /** Static access tokens expire within the hour at Google: accepted only outside production. */
  allowAccessTokens: boolean;
}

const cuit = z.coerce.number().int().refine(isValidCuit, 'not a valid CUIT (11 digits with check digit)');
const pem = (label: string) =>
  z
    .string()
    .max(64 * 1024)
    .regex(new RegExp(`-----BEGIN [A-Z ]*${label}-----`), `a PEM ${label.toLowerCase()}`);

const issuerParams = z.strictObject({ id: tenantId, cuit });
const issuerSecret = { certificatePem: pem('CERTIFICATE'), privateKeyPem: pem('PRIVATE KEY') };
const addIssuerBody = z.strictObject({ cuit, ...issuerSecret });
const rotateIssuerBody = z.strictObject(issuerSecret);

const credentialBody = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('service-account'), key: serviceAccountKeySchema }),
  z.strictObject({
    kind: z.literal('oauth-refresh-token'),
    clientId: z.string().min(1).max(512),
    clientSecret: z.string().min(1).max(512),
    refreshToken: z.string().min(1).max(4096),
  }),
  z.strictObject({ kind: z.literal('access-token'), token: z.string().min(1).max(4096) }),
]);
const calendarsBody = z.union([
  z.literal('credential'),
  // Stored as given: Postgres text takes no NUL, UTF-8 no lone surrogate.
  z.array(storableText(320)).min(1).max(1000),
]);
const addGoogleBody = z.strictObject({ credential: credentialBody, calendars: calendarsBody });
const rotateGoogleBody = z
  .strictObject({ credential: credentialBody.optional(), calendars: calendarsBody.optional() })
  .refine((body) => body.credential !== undefined || body.calendars !== undefined, 'send a credential, calendars, or both');

type CredentialBody = z.output<typeof credentialBody>;

function toGoogleCredential(body: CredentialBody): GoogleCredential {
  switch (body.kind) {
    case 'service-account':
      return serviceAccountCredential(body.key);
    case 'oauth-refresh-token':
    case 'access-token':
      return body;
    default:
      return body satisfies never;
  }
}

/**
 * `/v1/admin/tenants/:id/connections…`: the AFIP issuers and the Google connection a tenant acts
 * through. A tenant's `admin` key manages its own, `fleet:admin` any tenant's. Secrets go in and
 * never come out: answers list what a connection is, not what it holds.
 */
export function registerConnectionRoutes(app: FastifyInstance, { db, keyring, auth, allowAccessTokens }: ConnectionRoutesDeps): void {
  const base = '/v1/admin/tenants/:id/connections';

  /** Authorises the caller for the tenant in the path, which must exist. */
  async function tenantOf(request: FastifyRequest): Promise<string> {
    return (await administeredTenant(request, { db, auth })).tenantId;
  }

  /** Connection refusals are the client's: a CUIT taken, nothing to rotate, a key that is not the certificate's. */
  async function change<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await pg(work);
    } catch (error) {
      if (error instanceof ConnectionError) throw new HttpProblem(error.status, error.message, { type: '/problems/connection' });
      throw error;
    }
  }

  function credentialOf(body: CredentialBody): GoogleCredential {
    if (body.kind === 'access-token' && !allowAccessTokens) {
      throw new HttpProblem(422, 'Static access tokens are accepted only outside production; use a service account or a refresh token', {
        type: '/problems/connection',
      });
    }
    return toGoogleCredential(body);
  }

  app.get(base, { schema: connectionDoc("A tenant's connections, without secrets") }, async (request) => {
    const id = await tenantOf(request);
    const [afipIssuers, google] = await Promise.all([pg(() => afipIssuerRepository.list(db, id)), pg(() => googleConnectionRepository.find(db, id))]);
    return { tenantId: id, afipIssuers, google: google ?? null };
  });

  app.post(`${base}/afip-issuers`, { schema: connectionDoc('Add an AFIP issuer (CUIT, certificate and key)', addIssuerBody, 201) }, async (request, reply) => {
    const id = await tenantOf(request);
    const body = parseOrThrow(addIssuerBody, request.body, 'The request body', 422);
    const issuer = await change(() => afipIssuerRepository.add(db, keyring, { tenantId: id, ...body }));
    return reply.code(201).send(issuer);
  });

  app.put(`${base}/afip-issuers/:cuit`, { schema: connectionDoc("Replace an issuer's certificate and key", rotateIssuerBody) }, async (request) => {
    const id = await tenantOf(request);
    const params = parseOrThrow(issuerParams, request.params, 'The path');
    const body = parseOrThrow(rotateIssuerBody, request.body, 'The request body', 422);
    return change(() => afipIssuerRepository.rotate(db, keyring, { tenantId: id, cuit: params.cuit, ...body }));
  });

  app.delete(`${base}/afip-issuers/:cuit`, { schema: connectionDoc('Remove an AFIP issuer', undefined, 204) }, async (request, reply) => {
    const id = await tenantOf(request);
    const params = parseOrThrow(issuerParams, request.params, 'The path');
    await change(() => afipIssuerRepository.remove(db, { tenantId: id, cuit: params.cuit }));
    return reply.code(204).send();
  });

  app.post(`${base}/google`, { schema: connectionDoc('Add the Google Calendar connection and the calendars it may write to', addGoogleBody, 201) }, async (request, reply) => {
    const id = await tenantOf(request);
    const body = parseOrThrow(addGoogleBody, request.body, 'The request body', 422);
    const connection = await change(() =>
      googleConnectionRepository.add(db, keyring, { tenantId: id, credential: credentialOf(body.credential), access: calendarAccessOf(body.calendars) }),
    );
    return reply.code(201).send(connection);
  });

  app.patch(`${base}/google`, { schema: connectionDoc('Replace the Google credential and/or the calendars', rotateGoogleBody) }, async (request) => {
    const id = await tenantOf(request);
    const body = parseOrThrow(rotateGoogleBody, request.body, 'The request body', 422);
    return change(() =>
      googleConnectionRepository.rotate(db, keyring, {
        tenantId: id,
        ...(body.credential === undefined ? {} : { credential: credentialOf(body.credential) }),
        ...(body.calendars === undefined ? {} : { access: calendarAccessOf(body.calendars) }),
      }),
    );
  });

  app.delete(`${base}/google`, { schema: connectionDoc('Remove the Google connection', undefined, 204) }, async (request, reply) => {
    const id = await tenantOf(request);
    await change(() => googleConnectionRepository.remove(db, id));
    return reply.code(204).send();
  });
}
