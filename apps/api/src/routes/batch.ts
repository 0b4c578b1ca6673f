import type { AnyJobKind } from '@jobfleet/kinds';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { batchEnqueueDocs } from '../openapi';
import { HttpProblem, parseOrThrow } from '../problem';
import { inOrder, type AcceptOutcome, type JobToAccept } from './accept-jobs';
import { idempotencyKeyValue, prepareJob, type StoredResponse } from './job-intake';
import type { JobRoutesDeps } from './jobs';

/**
 * POST /v1/jobs/<kind>/batch: many jobs of one kind, each judged as POST /v1/jobs/<kind> would
 * judge it, for the cost of a few bulk statements instead of a few statements per job: the
 * acceptor's steps (accept-jobs.ts), each done for all the jobs at once.
 *
 * The answer is 200 with a result per job. Not 207: Multi-Status is WebDAV's, defined with an XML
 * body, and the request itself did succeed; what became of each job is in its result, with the
 * status and problem body the single route would have answered.
 */

/** One job of a batch: the single route's body, and the key its Idempotency-Key header would carry. */
const batchItem = (request: z.ZodType) => z.strictObject({ idempotencyKey: idempotencyKeyValue.optional(), request });
const batchBody = (item: z.ZodType, maxJobs: number) =>
  z.strictObject({
    jobs: z.array(item).min(1, 'a batch holds at least 1 job').max(maxJobs, `a batch holds at most ${maxJobs} jobs`),
  });
// A job is judged in two steps, its envelope and then its request, so that a refused request gets
// the very problem the single route answers, its paths relative to the request.
const itemEnvelope = batchItem(z.unknown().nonoptional('required'));

type Problem = ReturnType<HttpProblem['toProblem']>;

type ItemResult =
  | { index: number; status: number; idempotencyKey: string; jobId: string; links: Record<string, string>; replayed: boolean }
  | { index: number; status: number; idempotencyKey: string | null; problem: Problem; retryAfter?: number };

/** The fields of a stored answer that an item's result repeats. */
const acceptedAnswer = z.object({ jobId: z.string(), idempotencyKey: z.string(), links: z.record(z.string(), z.string()) });

function accepted(index: number, statusCode: number, stored: StoredResponse, replayed: boolean): ItemResult {
  const { jobId, idempotencyKey, links } = acceptedAnswer.parse(stored.body);
  return { index, status: statusCode, idempotencyKey, jobId, links, replayed };
}

function refused(index: number, idempotencyKey: string | null, problem: HttpProblem): ItemResult {
  const retryAfter = problem.headers['retry-after'];
  return { index, status: problem.status, idempotencyKey, problem: problem.toProblem(), ...(retryAfter === undefined ? {} : { retryAfter: Number(retryAfter) }) };
}

/** A job of the batch that got past validation. */
interface Candidate extends JobToAccept {
  index: number;
}

function resultOf(job: Candidate, outcome: AcceptOutcome): ItemResult {
  return outcome.accepted ? accepted(job.index, outcome.statusCode, outcome.stored, outcome.replayed) : refused(job.index, job.idempotencyKey, outcome.problem);
}

export function registerBatchRoutes(app: FastifyInstance, { config, kinds, auth, acceptor, intakeRefusal }: JobRoutesDeps): void {
  const { maxJobs, bodyLimitBytes } = config.api.batch;
  const envelope = batchBody(z.unknown(), maxJobs);

  /** Validates every job on its own; of jobs sharing a key, the first valid one keeps it. */
  function prepareAll(kind: AnyJobKind, tenantId: string, jobs: readonly unknown[], results: ItemResult[]): Candidate[] {
    const holders = new Map<string, number>();
    return jobs.flatMap((item, index): Candidate[] => {
      let key: string | null = null;
      try {
        const { idempotencyKey, request } = parseOrThrow(itemEnvelope, item, `Job ${index} of the batch`, 422);
        key = idempotencyKey ?? null;
        const body = parseOrThrow(kind.requestSchema, request, 'The request body', 422);
        const job = prepareJob(kind, tenantId, body, idempotencyKey);
        key = job.idempotencyKey;
        const holder = holders.get(key);
        if (holder !== undefined) {
          // Never enqueued twice; sent again in a later batch, it is judged against the first (replay or mismatch).
          throw new HttpProblem(409, `Idempotency-Key "${key}" is used by job ${holder} of this batch already`, {
            type: '/problems/idempotency-duplicate-in-batch',
            extensions: { duplicateOf: holder },
          });
        }
        holders.set(key, index);
        return [{ ...job, kind, tenantId, index }];
      } catch (error) {
        if (!(error instanceof HttpProblem)) throw error;
        results.push(refused(index, key, error));
        return [];
      }
    });
  }

  async function acceptBatch(kind: AnyJobKind, request: FastifyRequest): Promise<{ results: ItemResult[] }> {
    const { tenantId } = auth.principal(request);
    if (request.headers['idempotency-key'] !== undefined) {
      throw new HttpProblem(400, 'A batch takes a key per job (jobs[].idempotencyKey), not an Idempotency-Key header', { type: '/problems/validation' });
    }
    const { jobs } = parseOrThrow(envelope, request.body, 'The request body', 422);
    // A batch is of one kind and one tenant, so a switch refuses all of it or none: the whole
    // request answers the 503 (with Retry-After), and nothing of it is claimed or enqueued.
    const closed = intakeRefusal(kind.name, tenantId);
    if (closed) throw closed;
    const results: ItemResult[] = [];
    const candidates = prepareAll(kind, tenantId, jobs, results);

    for (const [job, outcome] of inOrder(candidates, await acceptor.acceptAll(candidates, request.log))) results.push(resultOf(job, outcome));
    return { results: results.sort((a, b) => a.index - b.index) };
  }

  for (const kind of kinds) {
    app.post(
      `/v1/jobs/${kind.name}/batch`,
      {
        onRequest: auth.requireScope(kind.intake.requiredScope),
        bodyLimit: bodyLimitBytes,
        schema: batchEnqueueDocs(kind, batchBody(batchItem(kind.requestSchema), maxJobs), { maxJobs, bodyLimitBytes }),
      },
      (request) => acceptBatch(kind, request),
    );
  }
}
