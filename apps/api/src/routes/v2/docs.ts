import type { AnyJobKind } from '@jobfleet/kinds';
import type { FastifySchema } from 'fastify';
import type { z } from 'zod';
import { batchEnqueueDocs, docs, enqueueDocs, nullable, object, problemSchema } from '../../openapi';
import { PROBLEM_CONTENT_TYPE } from '../../problem';
import { JOB_STATUSES, JOB_STATUS_MEANINGS } from './job-resource';

// The /v2 routes' documentation: each derived from its /v1 counterpart's (same inputs, same
// statuses), with /v2's answers and /v2's problem body.

const v2ProblemSchema = {
  ...problemSchema,
  required: [...problemSchema.required, 'instance'],
  properties: {
    ...problemSchema.properties,
    type: { type: 'string', description: 'A URI reference naming the problem; about:blank when the status says it all' },
    instance: { type: 'string', description: 'The occurrence: the request path, or a job of a batch (`<path>#/jobs/<index>`)' },
    errors: {
      type: 'array',
      description: 'Validation problems: one entry per offending field',
      items: object({ detail: { type: 'string' }, pointer: { type: 'string', description: 'JSON pointer (RFC 6901, as a URI fragment) into the input named in `detail` of the problem' } }),
    },
  },
};

interface ResponseDoc {
  description?: string;
}

/** `v1`'s documentation with /v2's success answers and every error answered as /v2's problem. */
function asV2(v1: FastifySchema, success: Record<number, unknown>, overrides: Partial<FastifySchema> = {}): FastifySchema {
  const errors = Object.entries((v1.response ?? {}) as Record<string, ResponseDoc>).flatMap(([status, doc]) =>
    Number(status) >= 400 ? [[status, { description: doc.description, content: { [PROBLEM_CONTENT_TYPE]: { schema: v2ProblemSchema } } }] as const] : [],
  );
  return { ...v1, ...overrides, response: { ...success, ...Object.fromEntries(errors) } };
}

const jobLinks = object({ self: { type: 'string' }, sync: { type: 'string', description: "The entity's sync status, for a kind that keeps one" } });
const jobStatus = {
  type: 'string',
  enum: [...JOB_STATUSES],
  description: JOB_STATUSES.map((status) => `\`${status}\`: ${JOB_STATUS_MEANINGS[status]}`).join('; '),
};
const acceptedJob = object({ id: { type: 'string' }, kind: { type: 'string' }, tenantId: { type: 'string' }, status: { type: 'string', enum: ['queued'] }, idempotencyKey: { type: 'string' }, links: jobLinks });
const dateTime = { type: 'string', format: 'date-time' };
const jobResourceSchema = object(
  {
    id: { type: 'string' },
    kind: { type: 'string' },
    tenantId: { type: 'string' },
    status: jobStatus,
    idempotencyKey: nullable('string'),
    attempts: nullable('integer'),
    maxAttempts: nullable('integer'),
    createdAt: dateTime,
    startedAt: { ...dateTime, nullable: true },
    finishedAt: { ...dateTime, nullable: true },
    updatedAt: dateTime,
    request: { description: 'The request as accepted (null once Redis no longer retains the job)' },
    result: { description: 'What the job returned, once succeeded' },
    error: {
      type: 'object',
      nullable: true,
      description: 'The last failed attempt as an RFC 9457 problem (type /problems/job-attempt-failed), with its stable `code` and whether another attempt will come',
      properties: { type: { type: 'string' }, title: { type: 'string' }, detail: { type: 'string' }, code: { type: 'string' }, retryable: { type: 'boolean' } },
    },
    links: jobLinks,
  },
  'The job, whatever its kind. Once Redis no longer retains it, the fields only Redis knew are null and the status comes from the stored sync status (or is `expired`)',
);
const pageLinks = object({ self: { type: 'string' }, next: { ...nullable('string'), description: 'The next page; null on the last' } });
const page = (item: unknown) => object({ items: { type: 'array', items: item }, links: pageLinks });
const pageQuerystring = object({
  limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
  cursor: { type: 'string', description: 'The cursor in `links.next` of the previous page' },
});

export function v2EnqueueDocs(kind: AnyJobKind): FastifySchema {
  return asV2(enqueueDocs(kind), { 202: { ...acceptedJob, description: 'Accepted (or replayed: Idempotent-Replayed: true); Location names the job' } });
}

export function v2BatchDocs(kind: AnyJobKind, body: z.ZodType, limits: { maxJobs: number; bodyLimitBytes: number }): FastifySchema {
  const result = object({
    index: { type: 'integer', description: 'Position of the job in `jobs`' },
    status: { type: 'integer', enum: [202, 403, 409, 422, 429], description: `What POST /v2/jobs/${kind.name} would have answered` },
    replayed: { type: 'boolean', description: 'Accepted jobs: accepted earlier under this key' },
    job: { ...acceptedJob, description: 'Accepted jobs' },
    idempotencyKey: { ...nullable('string'), description: 'Refused jobs: the key, given or derived; null when the job is too malformed to have one' },
    retryAfter: { type: 'integer', description: 'Refused jobs: seconds before retrying this one (409 in flight, 429)' },
    problem: { ...v2ProblemSchema, description: 'Refused jobs: the problem the single route would have answered' },
  });
  return asV2(batchEnqueueDocs(kind, body, limits), { 200: object({ results: { type: 'array', items: result } }, 'One result per job, in the order of `jobs`') });
}

const backup = docs.getBackup.response[200];
const syncStatus = docs.syncStatus.response[200];

export const v2Docs = {
  getJob: asV2(docs.getJob, { 200: jobResourceSchema }, { summary: 'A job of any kind: status, attempts, result or error' }),
  getSync: asV2(docs.syncStatus, { 200: syncStatus }),
  listSync: asV2(
    docs.syncStatus,
    { 200: page(syncStatus) },
    { summary: "The tenant's sync statuses of one kind, in entity id order", params: object({ kind: { type: 'string', example: 'reservation' } }), querystring: pageQuerystring },
  ),
  getBackup: asV2(docs.getBackup, { 200: backup }),
  listBackups: asV2(docs.listBackups, { 200: page(backup) }, { querystring: pageQuerystring }),
} satisfies Record<string, FastifySchema>;
