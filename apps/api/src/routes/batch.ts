import type { SyncEntity } from '@jobfleet/db';
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

/** What became of one job of a batch: accepted (or replayed), or refused with the problem the single route would have answered. */
export type BatchItemOutcome =
  | { index: number; status: number; idempotencyKey: string; jobId: string; links: Record<string, string>; replayed: boolean; sync: SyncEntity | null }
  | { index: number; status: number; idempotencyKey: string | null; problem: HttpProblem };

/** The fields of a stored answer that an item's result repeats. */
const acceptedAnswer = z.object({ jobId: z.string(), idempotencyKey: z.string(), links: z.record(z.string(), z.string()) });

function accepted(job: Candidate, statusCode: number, stored: StoredResponse, replayed: boolean): BatchItemOutcome {
  // A first answer is the one this request prepared; a replay's was stored by an earlier request, so it is read.
  const { jobId, idempotencyKey, links } = replayed ? acceptedAnswer.parse(stored.body) : job.stored.body;
  return { index: job.index, status: statusCode, idempotencyKey, jobId, links, replayed, sync: job.sync };
}

const refused = (index: number, idempotencyKey: string | null, problem: HttpProblem): BatchItemOutcome => ({ index, status: problem.status, idempotencyKey, problem });

/** A refused job's Retry-After, as a number of seconds in its result. */
export function retryAfterOf(problem: HttpProblem): { retryAfter?: number } {
  const retryAfter = problem.headers['retry-after'];
  return retryAfter === undefined ? {} : { retryAfter: Number(retryAfter) };
}

/** A result of /v1's batch: the problem body inline. */
function v1Result(outcome: BatchItemOutcome) {
  if ('problem' in outcome) return { ...outcome, problem: outcome.problem.toProblem(), ...retryAfterOf(outcome.problem) };
  const { sync: _sync, ...result } = outcome;
  return result;
}

/** A job of the batch that got past validation. */
interface Candidate extends JobToAccept {
  index: number;
}

function resultOf(job: Candidate, outcome: AcceptOutcome): BatchItemOutcome {
  return outcome.accepted ? accepted(job, outcome.statusCode, outcome.stored, outcome.replayed) : refused(job.index, job.idempotencyKey, outcome.problem);
}

/** A batch of jobs of one kind: its body's schema, its limits, and accepting one. Both API versions' batch routes take their jobs through it. */
export function createBatchIntake({ config, auth, acceptor }: Pick<JobRoutesDeps, 'config' | 'auth' | 'acceptor'>) {
  const { maxJobs, bodyLimitBytes } = config.api.batch;
  const envelope = batchBody(z.unknown(), maxJobs);

  /** Validates every job on its own; of jobs sharing a key, the first valid one keeps it. */
  function prepareAll(kind: AnyJobKind, tenantId: string, requestId: string, jobs: readonly unknown[], results: BatchItemOutcome[]): Candidate[] {
    const holders = new Map<string, number>();
    return jobs.flatMap((item, index): Candidate[] => {
      let key: string | null = null;
      try {
        const { idempotencyKey, request } = parseOrThrow(itemEnvelope, item, `Job ${index} of the batch`, 422);
        key = idempotencyKey ?? null;
        const body = parseOrThrow(kind.requestSchema, request, 'The request body', 422);
        const job = prepareJob(kind, tenantId, body, idempotencyKey, requestId);
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

  /** One outcome per job of the request, in the order of its jobs. */
  async function acceptBatch(kind: AnyJobKind, request: FastifyRequest): Promise<BatchItemOutcome[]> {
    const { tenantId } = auth.principal(request);
    if (request.headers['idempotency-key'] !== undefined) {
      throw new HttpProblem(400, 'A batch takes a key per job (jobs[].idempotencyKey), not an Idempotency-Key header', { type: '/problems/validation' });
    }
    const { jobs } = parseOrThrow(envelope, request.body, 'The request body', 422);
    const results: BatchItemOutcome[] = [];
    const candidates = prepareAll(kind, tenantId, request.id, jobs, results);
    // A batch is of one kind and one tenant, so a closed intake (a switch, the degradation level)
    // refuses all of it or none: the whole request answers the 503, nothing of it claimed.
    for (const [job, outcome] of inOrder(candidates, await acceptor.acceptAll(candidates, request.log))) results.push(resultOf(job, outcome));
    return results.sort((a, b) => a.index - b.index);
  }

  return { acceptBatch, limits: { maxJobs, bodyLimitBytes }, bodySchema: (kind: AnyJobKind) => batchBody(batchItem(kind.requestSchema), maxJobs) };
}

export function registerBatchRoutes(app: FastifyInstance, deps: JobRoutesDeps): void {
  const intake = createBatchIntake(deps);
  for (const kind of deps.kinds) {
    app.post(
      `/v1/jobs/${kind.name}/batch`,
      {
        onRequest: deps.auth.requireScope(kind.intake.requiredScope),
        bodyLimit: intake.limits.bodyLimitBytes,
        schema: batchEnqueueDocs(kind, intake.bodySchema(kind), intake.limits),
      },
      async (request) => ({ results: (await intake.acceptBatch(kind, request)).map(v1Result) }),
    );
  }
}
