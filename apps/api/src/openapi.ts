import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { DEFAULT_ROTATION_GRACE_SECONDS } from '@jobfleet/db';
import type { AnyJobKind } from '@jobfleet/kinds';
import { DEGRADATION_LEVELS } from '@jobfleet/resilience';
import type { FastifyInstance, FastifySchema } from 'fastify';
import { z } from 'zod';
import { PROBLEM_CONTENT_TYPE } from './problem';
import { usePagePolicy } from './security-headers';

// Route schemas here only document: zod validates in the handlers (see buildApi's validator
// compiler), so the JSON Schemas are derived from the zod schemas instead of written twice.

const jsonSchema = (schema: z.ZodType) => z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' });

const apiKeySecurity: Record<string, string[]>[] = [{ bearerAuth: [] }, { apiKeyHeader: [] }];

export const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        properties: { path: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
};

const problem = (description: string) => ({ description, content: { [PROBLEM_CONTENT_TYPE]: { schema: problemSchema } } });

// Any authenticated route may answer it: the caller's address failed to authenticate too often, or
// the tenant's or key's request rate limit is used up.
const tooManyRequests = problem(
  "Too many failed authentications from this address (/problems/too-many-failed-authentications), or the tenant's or the key's request rate limit is used up (/problems/rate-limited; RateLimit-Policy and RateLimit say which, on every answer); retry after Retry-After seconds",
);

const authProblems = {
  401: problem('Missing, unknown, revoked or expired API key'),
  403: problem('The key lacks the scope, or the resource belongs to another tenant'),
  429: tooManyRequests,
  503: problem('Redis or Postgres is unavailable; retry after Retry-After seconds'),
};

export const object = (properties: Record<string, unknown>, description?: string) => ({
  type: 'object',
  ...(description === undefined ? {} : { description }),
  properties,
});
export const nullable = (type: string) => ({ type, nullable: true });

const syncStatusProperties = {
  status: { type: 'string', enum: ['pending', 'running', 'synced', 'failed'] },
  version: { type: 'integer' },
  attempts: { type: 'integer' },
  lastError: { type: 'object', nullable: true, additionalProperties: true },
  externalRef: nullable('string'),
  lastSyncedAt: { type: 'string', format: 'date-time', nullable: true },
  updatedAt: { type: 'string', format: 'date-time' },
  jobId: nullable('string'),
  links: { type: 'object', additionalProperties: { type: 'string' } },
};

const adminSecurity: Record<string, string[]>[] = [{ bearerAuth: [] }, { apiKeyHeader: [] }, { adminBasic: [] }];

const backupProperties = {
  id: { type: 'string', format: 'uuid' },
  definition: { type: 'string' },
  trigger: { type: 'string', enum: ['scheduled', 'on-demand'] },
  slot: { type: 'string', format: 'date-time', nullable: true, description: 'The cron slot of a scheduled run' },
  status: { type: 'string', enum: ['running', 'succeeded', 'failed', 'pruned'] },
  target: { type: 'string' },
  location: nullable('string'),
  bytes: nullable('integer'),
  sha256: nullable('string'),
  durationMs: nullable('integer'),
  error: { type: 'object', nullable: true, additionalProperties: true },
  restoreCheck: { type: 'object', nullable: true, additionalProperties: true },
  requestedBy: { type: 'string', nullable: true, description: 'Tenant of the admin key that asked for an on-demand run' },
  startedAt: { type: 'string', format: 'date-time' },
  finishedAt: { type: 'string', format: 'date-time', nullable: true },
  links: { type: 'object', additionalProperties: { type: 'string' } },
};

const kindUsageProperties = {
  acceptedToday: { type: 'integer' },
  jobsPerDay: { type: 'integer' },
  waiting: { type: 'integer', description: 'Accepted and not started (waiting, delayed, retrying)' },
  maxWaitingJobs: { type: 'integer' },
  running: { type: 'integer', description: 'Running now, across the fleet' },
  maxRunningJobs: { type: 'integer' },
};
const usageProperties = {
  tenantId: { type: 'string' },
  tier: { type: 'string' },
  day: { type: 'string', format: 'date', description: 'The UTC day the daily quotas count in' },
  dayResetsAt: { type: 'string', format: 'date-time' },
  requests: object({ requestsPerMinute: { type: 'integer' }, keyRequestsPerMinute: { type: 'integer' } }),
  kinds: { type: 'object', additionalProperties: object(kindUsageProperties) },
};

const adminProblems = {
  401: problem('Admin credentials (HTTP Basic) or an admin-scoped API key are required'),
  403: problem('The API key lacks the admin scope'),
  429: tooManyRequests,
  503: problem('Postgres is unavailable; retry after Retry-After seconds'),
};

const switchProperties = {
  scope: { type: 'string', enum: ['kind', 'tenant'] },
  subject: { type: 'string', description: 'The job kind or the tenant id' },
  intakeOff: { type: 'boolean', description: 'The API refuses new jobs (503, /problems/intake-disabled, Retry-After)' },
  processingPaused: { type: 'boolean', description: 'Workers take none of these jobs: they wait (delayed, no attempt spent) and run after the pause' },
  reason: nullable('string'),
  updatedBy: { type: 'string' },
  updatedAt: { type: 'string', format: 'date-time' },
};
const flagProperties = {
  key: { type: 'string' },
  description: { type: 'string' },
  enabled: { type: 'boolean', description: 'false: everyone gets the kill variant' },
  variants: { type: 'object', additionalProperties: true },
  rolloutVariant: { type: 'string', description: 'Served to the listed tenants and the percentage' },
  defaultVariant: { type: 'string', description: 'Served to the other tenants' },
  killVariant: { type: 'string', description: 'Served to everyone while the flag is off' },
  tenants: { type: 'array', items: { type: 'string' } },
  percentage: { type: 'integer', minimum: 0, maximum: 100 },
  disabledReason: { ...nullable('string'), description: 'Why the automatic rollback turned it off' },
  updatedBy: { type: 'string' },
  updatedAt: { type: 'string', format: 'date-time' },
};
const fleetControlProblems = { ...adminProblems, 403: problem('Only fleet operators (fleet:admin, or the operator credentials) change fleet state') };
const switchDoc = (summary: string, params: Record<string, unknown>, body: z.ZodType): FastifySchema => ({
  tags: ['fleet controls'],
  summary,
  security: adminSecurity,
  params: object(params),
  body: jsonSchema(body),
  response: {
    200: object(switchProperties),
    400: problem('Invalid kind or tenant in the path'),
    404: problem('No such tenant'),
    422: problem('Invalid change'),
    ...fleetControlProblems,
  },
});

/** Kill switches and feature flags (fleet operators). */
export const fleetControlDocs = {
  listSwitches: {
    tags: ['fleet controls'],
    summary: 'The kill switches that were set, per job kind and per tenant',
    security: adminSecurity,
    response: { 200: object({ items: { type: 'array', items: object(switchProperties) } }), ...fleetControlProblems },
  },
  setKindSwitch: (body: z.ZodType) => switchDoc("Switch a job kind's intake off or pause its processing (audited; every process within seconds)", { kind: { type: 'string' } }, body),
  setTenantSwitch: (body: z.ZodType) => switchDoc("Switch a tenant's intake off or pause its processing (audited; every process within seconds)", { tenantId: { type: 'string' } }, body),
  listFlags: {
    tags: ['fleet controls'],
    summary: 'Feature flags',
    security: adminSecurity,
    response: { 200: object({ items: { type: 'array', items: object(flagProperties) } }), ...fleetControlProblems },
  },
  getFlag: {
    tags: ['fleet controls'],
    summary: 'One feature flag',
    security: adminSecurity,
    params: object({ key: { type: 'string' } }),
    response: { 200: object(flagProperties), 400: problem('Invalid flag key'), 404: problem('No such flag'), ...fleetControlProblems },
  },
  putFlag: (body: z.ZodType): FastifySchema => ({
    tags: ['fleet controls'],
    summary: 'Create or replace a feature flag (audited; every process within seconds)',
    security: adminSecurity,
    params: object({ key: { type: 'string' } }),
    body: jsonSchema(body),
    response: { 200: object(flagProperties), 400: problem('Invalid flag key'), 422: problem('Invalid definition'), ...fleetControlProblems },
  }),
};

// The enqueue routes' 503: a dependency, or a kill switch (see routes/fleet-controls.ts).
const intakeUnavailable = problem('Redis or Postgres is unavailable, or intake of this kind or tenant is switched off (/problems/intake-disabled); retry after Retry-After seconds');

/** The docs of `POST /v1/jobs/<queue>`, from the queue's intake (its zod schema included). */
export function enqueueDocs(kind: AnyJobKind): FastifySchema {
  const { intake } = kind;
  return {
    tags: ['jobs'],
    summary: intake.summary,
    description:
      'Idempotent: the same Idempotency-Key with the same body replays the first answer (Idempotent-Replayed: true), ' +
      'with another body is refused (422), while the first is still being accepted is refused (409). ' +
      `Without the header the key is ${intake.defaultKeyDescription}.`,
    security: apiKeySecurity,
    headers: object({
      'idempotency-key': { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7E]+$' },
    }),
    body: jsonSchema(kind.requestSchema),
    response: {
      202: object(
        {
          jobId: { type: 'string' },
          queue: { type: 'string' },
          status: { type: 'string', enum: ['queued'] },
          idempotencyKey: { type: 'string' },
          links: object({ self: { type: 'string' }, sync: { type: 'string' } }),
        },
        'Accepted (or replayed); Location names the job',
      ),
      400: problem('Invalid body or Idempotency-Key header'),
      409: problem('A request with this Idempotency-Key is still being accepted'),
      413: problem('Body larger than the configured limit'),
      415: problem('Body is not application/json'),
      422: problem('The Idempotency-Key was already used with a different body'),
      ...authProblems,
      503: intakeUnavailable,
      429: problem(
        'A quota of the tenant is exceeded (/problems/quota-exceeded; `quota`, `limit`, `used` say which), a request rate limit is used up (/problems/rate-limited), or too many failed authentications came from this address; retry after Retry-After seconds',
      ),
    },
  };
}

/** The docs of `POST /v1/jobs/<queue>/batch`; `body` is the zod schema of the batch, built from the kind's. */
export function batchEnqueueDocs(kind: AnyJobKind, body: z.ZodType, limits: { maxJobs: number; bodyLimitBytes: number }): FastifySchema {
  return {
    tags: ['jobs'],
    summary: `${kind.intake.summary}: up to ${limits.maxJobs} jobs in one request`,
    description:
      `Each job is judged on its own exactly as POST /v1/jobs/${kind.name} would judge it, with \`idempotencyKey\` in place of the ` +
      `Idempotency-Key header (without it, the key is ${kind.intake.defaultKeyDescription}): a key used before, on either route, ` +
      'replays its first answer (`replayed: true`), another body under it is refused (422), one still being accepted too (409); ' +
      'quotas count job by job, so a batch that crosses one is accepted up to it and refused (429) after. ' +
      'A key used twice in one batch is refused (409, /problems/idempotency-duplicate-in-batch) after its first use. ' +
      'The answer is 200 with one result per job, in order, whatever each result; a refused job carries the problem the single ' +
      'route would have answered (and `retryAfter` where that had a Retry-After). Nothing of a batch that fails as a whole ' +
      '(Redis or Postgres unavailable: 503) is accepted.',
    security: apiKeySecurity,
    body: jsonSchema(body),
    response: {
      200: object(
        {
          results: {
            type: 'array',
            items: object({
              index: { type: 'integer', description: 'Position of the job in `jobs`' },
              status: { type: 'integer', enum: [202, 403, 409, 422, 429], description: 'What the single route would have answered' },
              idempotencyKey: { ...nullable('string'), description: 'The key, given or derived; null when the job is too malformed to have one' },
              jobId: { type: 'string', description: 'Accepted jobs' },
              links: object({ self: { type: 'string' }, sync: { type: 'string' } }),
              replayed: { type: 'boolean', description: 'Accepted earlier under this key: the stored first answer' },
              retryAfter: { type: 'integer', description: 'Seconds before retrying this job (409 in flight, 429)' },
              problem: { ...problemSchema, description: 'Refused jobs: the problem body the single route would have answered' },
            }),
          },
        },
        'One result per job, in the order of `jobs`',
      ),
      400: problem('Not JSON, or an Idempotency-Key header (a batch takes a key per job)'),
      413: problem(`Body larger than API_BATCH_BODY_LIMIT_BYTES (${limits.bodyLimitBytes} bytes here)`),
      415: problem('Body is not application/json'),
      422: problem(`Not a batch: \`jobs\` missing, empty or longer than API_BATCH_MAX_JOBS (${limits.maxJobs} here); errors name the field`),
      ...authProblems,
      503: intakeUnavailable,
      429: problem(
        'A request rate limit is used up (/problems/rate-limited; a batch counts as one request), or too many failed authentications came from this address; quotas are answered per job',
      ),
    },
  };
}

/** Documentation of an admin route over a tenant's connections, its body derived from the zod schema. */
export function connectionDoc(summary: string, body?: z.ZodType, success: 200 | 201 | 204 = 200): FastifySchema {
  return {
    tags: ['connections'],
    summary,
    security: apiKeySecurity,
    ...(body === undefined ? {} : { body: jsonSchema(body) }),
    response: {
      [success]: success === 204 ? { description: 'Done', type: 'null' } : { description: 'The connection, without its secrets', type: 'object', additionalProperties: true },
      400: problem('Invalid tenant id or CUIT in the path'),
      404: problem('No such tenant or connection'),
      409: problem('The CUIT is registered already, or the tenant has a Google connection already'),
      422: problem('Invalid body: not PEM, key not matching the certificate, certificate for another CUIT'),
      401: authProblems[401],
      403: problem('The key is not admin of this tenant (nor fleet:admin)'),
      429: tooManyRequests,
      503: authProblems[503],
    },
  };
}

const quotaProperties = { jobsPerDay: { type: 'integer' }, maxWaitingJobs: { type: 'integer' }, maxRunningJobs: { type: 'integer' } };

/** Documentation of a tenant's limits: reading them, or changing them with `change` (its zod schema) as the body. */
export function tenantLimitsDoc(change?: z.ZodType): FastifySchema {
  return {
    tags: ['limits'],
    summary: change === undefined ? "A tenant's tier, overrides and effective limits" : "Set a tenant's tier and/or replace its overrides (fleet:admin only)",
    security: apiKeySecurity,
    params: object({ id: { type: 'string' } }),
    ...(change === undefined ? {} : { body: jsonSchema(change) }),
    response: {
      200: object({
        tenantId: { type: 'string' },
        tier: { ...nullable('string'), description: 'The tier set on the tenant; null: the configured default' },
        overrides: { type: 'object', additionalProperties: true, description: 'Limits set for this tenant alone, over its tier' },
        effective: object(
          {
            tier: { type: 'string' },
            requestsPerMinute: { type: 'integer', description: "All of the tenant's keys together" },
            keyRequestsPerMinute: { type: 'integer', description: 'Any one key' },
            kinds: { type: 'object', additionalProperties: object(quotaProperties), description: 'Quotas per job kind' },
          },
          'What applies: the tier, its per-kind entries, then the overrides',
        ),
      }),
      400: problem('Invalid tenant id in the path'),
      401: authProblems[401],
      403: problem(change === undefined ? 'The key is not admin of this tenant (nor fleet:admin)' : 'The key is not fleet:admin'),
      404: problem('No such tenant'),
      ...(change === undefined ? {} : { 422: problem('Unknown tier, invalid overrides or an unknown job kind; errors name each field') }),
      429: tooManyRequests,
      503: authProblems[503],
    },
  };
}

const apiKeyProperties = {
  id: { type: 'string' },
  tenantId: { type: 'string' },
  name: { type: 'string' },
  prefix: { type: 'string', description: 'The first characters of the key, to tell keys apart' },
  scopes: { type: 'array', items: { type: 'string' } },
  createdAt: { type: 'string', format: 'date-time' },
  lastUsedAt: { type: 'string', format: 'date-time', nullable: true, description: 'Recorded at most once a minute' },
  expiresAt: { type: 'string', format: 'date-time', nullable: true },
  revokedAt: { type: 'string', format: 'date-time', nullable: true },
  replacedBy: { type: 'string', nullable: true, description: 'The key that replaced this one by rotation' },
};
const newApiKeyProperties = { ...apiKeyProperties, key: { type: 'string', description: 'The key itself: shown in this answer only' } };

/** Documentation of the routes over a tenant's API keys, bodies derived from their zod schemas. */
export function apiKeyDocs(bodies: { create: z.ZodType; rotate: z.ZodType }): Record<'list' | 'create' | 'rotate' | 'revoke', FastifySchema> {
  const common = {
    400: problem('Invalid tenant or key id in the path'),
    401: authProblems[401],
    403: problem('The key is not admin of this tenant (nor fleet:admin), or a tenant admin touched a fleet:admin key'),
    404: problem('No such tenant, or no such key in this tenant'),
    429: tooManyRequests,
    503: authProblems[503],
  };
  const doc = (summary: string, schema: FastifySchema): FastifySchema => ({ tags: ['api-keys'], summary, security: apiKeySecurity, ...schema });
  return {
    list: doc("A tenant's API keys, revoked and expired ones included, never the keys themselves", {
      response: { 200: object({ tenantId: { type: 'string' }, items: { type: 'array', items: object(apiKeyProperties) } }), ...common },
    }),
    create: doc('Create an API key; the answer carries the key, once', {
      body: jsonSchema(bodies.create),
      response: { 201: object(newApiKeyProperties, 'The new key'), 422: problem('Invalid name, scopes or expiry'), ...common },
    }),
    rotate: doc(`Replace a key: a new one with the same name, scopes and lifetime; the old one works for graceSeconds more (default ${DEFAULT_ROTATION_GRACE_SECONDS}, 0 revokes it now)`, {
      body: jsonSchema(bodies.rotate),
      response: {
        201: object({ ...newApiKeyProperties, previous: object(apiKeyProperties, 'The replaced key') }, 'The new key, and the old one as it now is'),
        409: problem('The key is revoked, expired or already replaced'),
        422: problem('Invalid graceSeconds'),
        ...common,
      },
    }),
    revoke: doc('Revoke a key at once (within the API replicas\' 5 s key cache)', { response: { 204: { description: 'Revoked', type: 'null' }, ...common } }),
  };
}

const jobRowProperties = {
  kind: { type: 'string', description: 'The queue' },
  id: { type: 'string' },
  tenantId: { ...nullable('string'), description: 'null for a scheduled job (a backup definition\'s cron run)' },
  state: { type: 'string', enum: ['waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled'], description: 'As Postgres last heard it' },
  attempts: { type: 'integer' },
  businessKey: { ...nullable('string'), description: 'reservationId, invoiceId or backup definition' },
  idempotencyKey: nullable('string'),
  lastError: { type: 'object', nullable: true, properties: { code: { type: 'string' }, message: { type: 'string' } } },
  createdAt: { type: 'string', format: 'date-time' },
  updatedAt: { type: 'string', format: 'date-time' },
  links: { type: 'object', additionalProperties: { type: 'string' } },
};
const attemptProperties = {
  run: { type: 'integer', description: "BullMQ's attemptsStarted: a stalled run run again is a run of its own" },
  attempt: { type: 'integer' },
  workerId: { type: 'string' },
  startedAt: { type: 'string', format: 'date-time' },
  finishedAt: { type: 'string', format: 'date-time', nullable: true },
  outcome: { type: 'string', enum: ['running', 'completed', 'retried', 'failed', 'delayed', 'interrupted'], description: 'running also for a run whose worker died' },
  error: { type: 'object', nullable: true, properties: { code: { type: 'string' }, message: { type: 'string' } } },
};

/** Who may call a job admin route: operators fleet-wide, or a tenant's admin key for its own tenant. */
function jobAdminScope(fleet: boolean) {
  return fleet
    ? { security: adminSecurity, params: {}, forbidden: problem('The API key is not fleet:admin') }
    : { security: apiKeySecurity, params: { id: { type: 'string', description: 'The tenant' } }, forbidden: problem('The key is not admin of this tenant (nor fleet:admin)') };
}

/** The job admin routes' documentation, fleet-wide (`fleet`) or of one tenant; query and bulk body from their zod schemas. */
export function jobAdminDocs(options: { fleet: boolean; list: z.ZodType; bulk: z.ZodType; bulkRetryMax: number }) {
  const { security, params, forbidden } = jobAdminScope(options.fleet);
  const problems = { 401: adminProblems[401], 403: forbidden, 429: tooManyRequests, 503: authProblems[503] };
  const jobParams = object({ ...params, kind: { type: 'string' }, jobId: { type: 'string' } });
  const action = (summary: string, from: string): FastifySchema => ({
    tags: ['job-admin'],
    summary,
    security,
    params: jobParams,
    response: {
      200: object({ ...jobRowProperties, previousState: { type: 'string' } }, 'The job after the action'),
      400: problem('Invalid path'),
      404: problem('No such job (in this tenant)'),
      409: problem(`The job is not ${from} (/problems/job-state-conflict; state says what it is)`),
      410: problem('Redis no longer holds the job (/problems/job-expired-from-queue): submit its request again'),
      ...problems,
    },
  });
  return {
    list: {
      tags: ['job-admin'],
      summary: 'Jobs newest first, from Postgres (found after Redis dropped them): filter by kind, state, tenant, created time, id, idempotency key or business key',
      security,
      ...(options.fleet ? {} : { params: object(params) }),
      querystring: jsonSchema(options.list),
      response: {
        200: object({ items: { type: 'array', items: object(jobRowProperties) }, nextCursor: nullable('string') }),
        400: problem('Invalid filter, limit or cursor'),
        ...problems,
      },
    },
    get: {
      tags: ['job-admin'],
      summary: 'One job: its row, its state in the queue and its attempt history',
      security,
      params: jobParams,
      response: {
        200: object({
          ...jobRowProperties,
          queueState: { type: 'string', description: 'BullMQ state now, or expired-from-queue' },
          attemptHistory: { type: 'array', items: object(attemptProperties) },
        }),
        400: problem('Invalid path'),
        404: problem('No such job (in this tenant)'),
        ...problems,
      },
    },
    actions: {
      retry: action('Retry a failed job, with a fresh set of attempts', 'failed'),
      cancel: action('Cancel a waiting or delayed job: removed from the queue, its entity\'s sync status cancelled', 'waiting or delayed'),
      promote: action('Run a delayed job now', 'delayed'),
    },
    bulkRetry: {
      tags: ['job-admin'],
      summary: `Retry the failed jobs a filter matches: dryRun counts them; otherwise at most max (default and ceiling ${options.bulkRetryMax}, ADMIN_BULK_RETRY_MAX)`,
      security,
      ...(options.fleet ? {} : { params: object(params) }),
      body: jsonSchema(options.bulk),
      response: {
        200: object({
          dryRun: { type: 'boolean' },
          matched: { type: 'integer', description: 'Failed jobs the filter matches' },
          max: { type: 'integer' },
          retried: { type: 'integer' },
          skipped: { type: 'array', items: object({ kind: { type: 'string' }, jobId: { type: 'string' }, reason: { type: 'string' } }) },
        }),
        400: problem('Invalid path'),
        422: problem('Invalid body, or the filter matches more than max (/problems/bulk-retry-over-cap)'),
        ...problems,
      },
    },
  } satisfies Record<string, unknown>;
}

/** The admin audit's documentation: every entry (operators), or one tenant's. */
export function adminAuditDocs(fleet: boolean, query: z.ZodType): FastifySchema {
  const { security, params, forbidden } = jobAdminScope(fleet);
  return {
    tags: ['job-admin'],
    summary: fleet ? 'The admin audit, newest first: who did what, when, with which filter' : "The admin audit entries about this tenant, newest first",
    security,
    ...(fleet ? {} : { params: object(params) }),
    querystring: jsonSchema(query),
    response: {
      200: object({
        items: {
          type: 'array',
          items: object({
            id: { type: 'integer' },
            at: { type: 'string', format: 'date-time' },
            actor: { type: 'string' },
            actorTenantId: nullable('string'),
            action: { type: 'string' },
            tenantId: nullable('string'),
            target: { type: 'object', additionalProperties: true },
            filter: { type: 'object', nullable: true, additionalProperties: true },
            detail: { type: 'object', additionalProperties: true },
          }),
        },
        nextCursor: nullable('string'),
      }),
      400: problem('Invalid filter, limit or cursor'),
      401: adminProblems[401],
      403: forbidden,
      429: tooManyRequests,
      503: authProblems[503],
    },
  };
}

/** One documentation schema per route, keyed by what the route does. */
/** The fleet's degradation level in the readiness body (README, "Degradation levels"). */
const degradationLevelDocs = {
  level: { type: 'string', enum: [...DEGRADATION_LEVELS], description: 'The fleet-wide degradation level this process acts on' },
  degradation: { type: 'object', additionalProperties: true, description: 'Since when, the raised conditions and the signals measured' },
};

export const docs = {
  getJob: {
    tags: ['jobs'],
    summary: 'A job: state, attempts, result or error',
    security: apiKeySecurity,
    params: object({ id: { type: 'string' } }),
    response: {
      200: object(
        {
          id: { type: 'string' },
          queue: { type: 'string' },
          state: { type: 'string', description: 'BullMQ state, or expired-from-queue once Redis no longer retains it' },
          attempts: { type: 'integer' },
          maxAttempts: { type: 'integer' },
          createdAt: { type: 'string', format: 'date-time' },
          processedAt: { type: 'string', format: 'date-time', nullable: true },
          finishedAt: { type: 'string', format: 'date-time', nullable: true },
          data: {},
          result: {},
          error: {
            type: 'object',
            nullable: true,
            description: 'The last failure: stable code, message, and whether another attempt will come (stacks and SQL stay in the logs)',
            properties: { code: { type: 'string' }, message: { type: 'string' }, retryable: { type: 'boolean' } },
          },
          sync: object(syncStatusProperties),
          links: { type: 'object', additionalProperties: { type: 'string' } },
        },
        'Fields a job no longer in Redis cannot give are absent; `sync` then carries the stored status',
      ),
      404: problem('No such job'),
      ...authProblems,
    },
  },
  reservationSync: {
    tags: ['sync'],
    summary: "A reservation's Calendar sync status",
    security: apiKeySecurity,
    params: object({ id: { type: 'string' } }),
    response: {
      200: object({ reservationId: { type: 'string' }, ...syncStatusProperties }),
      404: problem('No sync status for this reservation'),
      ...authProblems,
    },
  },
  syncStatus: {
    tags: ['sync'],
    summary: "Any entity's sync status",
    security: apiKeySecurity,
    params: object({ kind: { type: 'string', example: 'reservation' }, entityId: { type: 'string' } }),
    response: {
      200: object({ kind: { type: 'string' }, entityId: { type: 'string' }, ...syncStatusProperties }),
      404: problem('Unknown kind, or no sync status for this entity'),
      ...authProblems,
    },
  },
  listBackups: {
    tags: ['backups'],
    summary: 'Backup runs, newest first',
    security: adminSecurity,
    querystring: object({
      limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
      cursor: { type: 'string', description: 'nextCursor of the previous page' },
    }),
    response: {
      200: object({ items: { type: 'array', items: object(backupProperties) }, nextCursor: nullable('string') }),
      400: problem('Invalid limit or cursor'),
      ...adminProblems,
    },
  },
  getBackup: {
    tags: ['backups'],
    summary: 'One backup run: status, location, size, sha256, restore check, error',
    security: adminSecurity,
    params: object({ id: { type: 'string', format: 'uuid' } }),
    response: { 200: object(backupProperties), 400: problem('Not a backup id'), 404: problem('No such backup'), ...adminProblems },
  },
  usage: {
    tags: ['usage'],
    summary: "The tenant's usage and limits: jobs accepted today, waiting and running per job kind, and its request rates",
    security: apiKeySecurity,
    response: { 200: object(usageProperties), ...authProblems },
  },
  tenantUsage: {
    tags: ['usage'],
    summary: "A tenant's usage and limits (admin of the tenant, or fleet:admin)",
    security: apiKeySecurity,
    params: object({ id: { type: 'string' } }),
    response: { 200: object(usageProperties), 400: problem('Invalid tenant id'), 404: problem('No such tenant'), ...authProblems },
  },
  deprecations: {
    tags: ['versions'],
    summary: 'Who still calls deprecated routes (every /v1 route): per API key, its tenant, name, prefix and calls per route (fleet:admin)',
    description: 'Counted per key, route pattern and UTC day; each API process writes its counts every API_DEPRECATION_FLUSH_MS, so the latest calls show that late.',
    security: adminSecurity,
    querystring: object({ days: { type: 'integer', minimum: 1, maximum: 366, default: 30, description: 'The last this many UTC days, today included' } }),
    response: {
      200: object({
        since: { type: 'string', format: 'date' },
        keys: {
          type: 'array',
          description: 'Keys last seen most recently first',
          items: object({
            keyId: { type: 'string' },
            tenantId: { type: 'string' },
            name: { type: 'string' },
            prefix: { type: 'string' },
            revokedAt: { type: 'string', format: 'date-time', nullable: true },
            calls: { type: 'integer' },
            lastSeen: { type: 'string', format: 'date-time' },
            routes: { type: 'array', items: object({ route: { type: 'string', example: 'GET /v1/jobs/:id' }, calls: { type: 'integer' }, lastSeen: { type: 'string', format: 'date-time' } }) },
          }),
        },
      }),
      400: problem('Invalid days'),
      ...adminProblems,
    },
  },
  live: { tags: ['ops'], summary: 'Liveness: 200 while the process runs' },
  ready: {
    tags: ['ops'],
    summary: 'Readiness: Redis and Postgres answer a ping in time; degraded external dependencies are listed but keep it 200',
    response: {
      200: object({
        status: { type: 'string', enum: ['ok', 'degraded'] },
        checks: { type: 'object', additionalProperties: true },
        degraded: { type: 'object', additionalProperties: true, description: 'Dependencies whose breaker some worker has open or half-open' },
        ...degradationLevelDocs,
      }),
      503: object(
        { status: { type: 'string' }, checks: { type: 'object', additionalProperties: true }, degraded: { type: 'object', additionalProperties: true }, ...degradationLevelDocs },
        'Redis or Postgres failed; checks say which',
      ),
    },
  },
  metrics: {
    tags: ['ops'],
    summary: 'Prometheus metrics (text exposition format)',
    description: 'With API_METRICS_TOKEN set, only for `Authorization: Bearer <that token>`; otherwise open.',
    response: { 401: problem('API_METRICS_TOKEN is set and the request does not carry it as its bearer token') },
  },
} satisfies Record<string, FastifySchema>;

// Swagger UI loads its own bundle, styles and the document, and its bundle adds one <style>
// element: allowed by its hash, not by 'unsafe-inline'. An upgrade that changes it fails the
// browser test (pages.browser.test.ts), which prints the new hash.
const SWAGGER_UI_SOURCES = { 'style-src': ["'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='"] };

/** An OpenAPI document as @fastify/swagger builds it: the parts split by version. */
interface OpenApiDocument {
  info: Record<string, unknown>;
  tags?: { name: string }[];
  paths?: Record<string, Record<string, { tags?: string[]; deprecated?: boolean }>>;
  [field: string]: unknown;
}

const API_VERSIONS = ['v1', 'v2'] as const;
type ApiVersion = (typeof API_VERSIONS)[number];
const VERSION_PATH = /^\/(v\d+)\//;

/** The document of one version: its paths, and the unversioned ones (health, metrics) that serve every version. */
function versionDocument(full: OpenApiDocument, version: ApiVersion, v1Deprecated: boolean): OpenApiDocument {
  const paths = Object.entries(full.paths ?? {}).flatMap(([path, operations]) => {
    const pathVersion = VERSION_PATH.exec(path)?.[1];
    if (pathVersion !== undefined && pathVersion !== version) return [];
    // Swagger UI strikes deprecated operations through.
    const marked = pathVersion === 'v1' && v1Deprecated ? Object.fromEntries(Object.entries(operations).map(([method, op]) => [method, { ...op, deprecated: true }])) : operations;
    return [[path, marked] as const];
  });
  const used = new Set(paths.flatMap(([, operations]) => Object.values(operations).flatMap((op) => op.tags ?? [])));
  return {
    ...full,
    info: { ...full.info, version: version === 'v1' ? '1.0.0' : '2.0.0', title: `jobfleet API ${version}${version === 'v1' && v1Deprecated ? ' (deprecated: use v2)' : ''}` },
    tags: (full.tags ?? []).filter((tag) => used.has(tag.name)),
    paths: Object.fromEntries(paths),
  };
}

/** Where the document of `version` is served. */
const versionDocumentPath = (version: ApiVersion) => `/openapi/${version}.json`;

/**
 * OpenAPI 3: one document per version at /openapi/v1.json and /openapi/v2.json, both at once at
 * /docs/json, and the Swagger UI at /docs (a version picker in its top bar). Register before the routes.
 */
export async function registerDocs(app: FastifyInstance, info: { title: string; v1Deprecated: boolean }): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: info.title, version: '2.0.0', description: 'Takes jobs from producers and queues them for the jobfleet workers. /v1 and /v2 together; /openapi/v1.json and /openapi/v2.json hold one version each.' },
      tags: [
        { name: 'jobs', description: 'Queue jobs and follow them' },
        { name: 'sync', description: 'What has been synced, per entity' },
        { name: 'backups', description: 'Backup runs (admin)' },
        { name: 'connections', description: "A tenant's AFIP issuers and Google connection (admin of the tenant, or fleet:admin)" },
        { name: 'usage', description: "A tenant's quotas and how much of them it uses" },
        { name: 'api-keys', description: "A tenant's API keys: list, create, rotate, revoke (admin of the tenant, or fleet:admin)" },
        { name: 'job-admin', description: 'Jobs listed, searched and acted on (retry, cancel, promote), and the admin audit: fleet-wide for operators, per tenant for its admin' },
        { name: 'limits', description: "A tenant's tier and limit overrides (read: admin of the tenant or fleet:admin; change: fleet:admin)" },
        { name: 'versions', description: 'API versions: who still calls the deprecated one' },
        { name: 'fleet controls', description: 'Kill switches per job kind and tenant, and feature flags (fleet:admin)' },
        { name: 'ops', description: 'Health and metrics' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'API key as a bearer token' },
          apiKeyHeader: { type: 'apiKey', in: 'header', name: 'X-Api-Key' },
          adminBasic: { type: 'http', scheme: 'basic', description: 'Operator routes only: /admin/queues (Bull Board), /v1/backups, /v1/admin/jobs, /v1/admin/audit' },
        },
      },
    },
    // Bull Board's and the UI's own routes stay out of the document.
    hideUntagged: true,
  });
  await app.register(async (docs) => {
    usePagePolicy(docs, SWAGGER_UI_SOURCES);
    await docs.register(swaggerUi, {
      routePrefix: '/docs',
      // The newest version first; the top bar switches between them.
      uiConfig: { urls: [...API_VERSIONS].reverse().map((version) => ({ url: versionDocumentPath(version), name: version })) },
    });
  });
  const documents = new Map<ApiVersion, OpenApiDocument>();
  for (const version of API_VERSIONS) {
    app.get(versionDocumentPath(version), async () => {
      // Built once, on first demand: every route is registered by then.
      let document = documents.get(version);
      if (document === undefined) {
        document = versionDocument(app.swagger() as unknown as OpenApiDocument, version, info.v1Deprecated);
        documents.set(version, document);
      }
      return document;
    });
  }
}
