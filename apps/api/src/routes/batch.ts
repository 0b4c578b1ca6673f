import {
  abandonIdempotentRequests,
  beginIdempotentRequests,
  completeIdempotentRequests,
  recordEnqueuedMany,
  type IdempotentBatchRef,
} from '@jobfleet/db';
import type { AdmissionContext, AnyJobKind } from '@jobfleet/kinds';
import { enqueueMany } from '@jobfleet/queue';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { callPostgres as pg, queueRedisCaller } from '../dependencies';
import { batchEnqueueDocs } from '../openapi';
import { HttpProblem, parseOrThrow } from '../problem';
import {
  claimOf,
  idempotencyKeyValue,
  idempotencyTimes,
  kindRefusal,
  prepareJob,
  queueFor,
  quotaProblem,
  takeBackJob,
  type PreparedJob,
  type StoredResponse,
} from './job-intake';
import type { JobRoutesDeps } from './jobs';

/**
 * POST /v1/jobs/<kind>/batch: many jobs of one kind, each judged as POST /v1/jobs/<kind> would
 * judge it, for the cost of a few bulk statements instead of a few statements per job. The steps
 * are the single route's, each done for all jobs at once: claim the keys (Postgres), the kind's
 * own admission (cached per admission key), the quotas (one Redis pipeline, in order), the sync
 * rows (one statement), the enqueue (addBulk) and storing the answers (one statement).
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
interface Candidate extends PreparedJob {
  index: number;
}

/** Pairs each item with the answer at its position: every bulk call answers in the order asked. */
function inOrder<T, A>(items: readonly T[], answers: readonly A[]): [T, A][] {
  if (answers.length !== items.length) throw new Error(`expected ${items.length} answers, got ${answers.length}`);
  return items.map((item, index) => [item, answers[index] as A]);
}

/**
 * The kind's own admission of each job, asked once per admission key (the calendar, the CUIT) and
 * once per job for a kind without one.
 */
function cachedKindRefusal(kind: AnyJobKind, context: AdmissionContext) {
  const asked = new Map<string, Promise<HttpProblem | undefined>>();
  return (request: unknown): Promise<HttpProblem | undefined> => {
    const key = kind.intake.admissionKey?.(request);
    if (key === undefined) return kindRefusal(kind, context, request);
    let answer = asked.get(key);
    if (answer === undefined) {
      answer = kindRefusal(kind, context, request);
      asked.set(key, answer);
    }
    return answer;
  };
}

export function registerBatchRoutes(app: FastifyInstance, { config, db, kinds, queues, redis: connection, auth, capacity, limits }: JobRoutesDeps): void {
  const redisOf = queueRedisCaller(connection);
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
        return [{ ...job, index }];
      } catch (error) {
        if (!(error instanceof HttpProblem)) throw error;
        results.push(refused(index, key, error));
        return [];
      }
    });
  }

  /**
   * Accepts the jobs whose keys this request claimed, or refuses them as the single route would.
   * If a step fails, nothing is promised: what was done for them is taken back and the error thrown.
   */
  async function acceptClaimed(kind: AnyJobKind, tenantId: string, claimed: readonly Candidate[], log: FastifyBaseLogger): Promise<ItemResult[]> {
    const queue = queueFor(queues, kind.name);
    const redis = redisOf(kind.name);
    const keys: IdempotentBatchRef = { tenantId, scope: kind.name };
    const results: ItemResult[] = [];
    const refusedJobs: Candidate[] = [];
    const refuse = (job: Candidate, problem: HttpProblem) => {
      refusedJobs.push(job);
      results.push(refused(job.index, job.idempotencyKey, problem));
    };
    const counted: string[] = [];
    const enqueuedHere: string[] = [];
    try {
      // Judged after the keys are ours, so a replay of an accepted job still gets its first answer.
      const refusal = cachedKindRefusal(kind, { config, db, tenantId });
      const admissible: Candidate[] = [];
      for (const [job, problem] of inOrder(claimed, await Promise.all(claimed.map((job) => refusal(job.request))))) {
        if (problem === undefined) admissible.push(job);
        else refuse(job, problem);
      }

      const toEnqueue: { job: Candidate; priority: number }[] = [];
      if (admissible.length > 0) {
        const quotas = (await pg(() => limits.limitsOf(tenantId))).quotas(kind.name);
        const now = Date.now();
        const admissions = await redis(() => capacity.admitMany({ kind: kind.name, tenantId }, admissible.map((job) => job.jobId), quotas, now));
        for (const [job, admission] of inOrder(admissible, admissions)) {
          if (!admission.admitted) {
            refuse(job, quotaProblem(admission, kind.name, now));
            continue;
          }
          if (admission.counted) counted.push(job.jobId);
          toEnqueue.push({ job, priority: admission.priority });
        }
      }

      if (toEnqueue.length > 0) {
        const rows = toEnqueue.flatMap(({ job }) => (job.sync === null ? [] : [job.sync]));
        // Written before the enqueue, so a failing write leaves nothing in Redis.
        if (rows.length > 0) await pg(() => recordEnqueuedMany(db, rows));
        // A timed-out enqueue may still land; a retry then meets its jobs under the same ids.
        const enqueued = await redis(() => enqueueMany(queue, toEnqueue.map(({ job, priority }) => ({ ...job.job, priority }))));
        const kept = enqueued.filter(({ created }) => !created).map(({ jobId }) => jobId);
        enqueuedHere.push(...enqueued.filter(({ created }) => created).map(({ jobId }) => jobId));
        // As on the single route: expected after a stale takeover, else Redis still holds an old job under the id.
        if (kept.length > 0) log.warn({ jobIds: kept }, 'job ids already in Redis: the existing jobs were kept');
        const responses = toEnqueue.map(({ job }) => ({ key: job.idempotencyKey, response: job.stored }));
        await pg(() => completeIdempotentRequests(db, { ...keys, statusCode: 202, responses }));
        for (const { job } of toEnqueue) results.push(accepted(job.index, 202, job.stored, false));
      }
    } catch (error) {
      // Nothing was promised: take back the jobs this request added (a job a worker has already
      // stays, and keeps counting until it finishes), their admissions, and every claimed key.
      const gone = await Promise.all(enqueuedHere.map((jobId) => takeBackJob(redis, queue, jobId, log)));
      const stays = new Set(inOrder(enqueuedHere, gone).flatMap(([jobId, removed]) => (removed ? [] : [jobId])));
      const withdrawn = counted.filter((jobId) => !stays.has(jobId));
      if (withdrawn.length > 0) {
        await redis(() => capacity.withdrawMany({ kind: kind.name, tenantId }, withdrawn)).catch((withdrawError: unknown) =>
          log.warn({ err: withdrawError, jobIds: withdrawn }, 'could not take back the quota of a failed batch'),
        );
      }
      await abandon(keys, claimed, log);
      throw error;
    }
    // Refused jobs free their keys, as on the single route.
    await abandon(keys, refusedJobs, log);
    return results;
  }

  /** Frees the keys of jobs not accepted, so a retry is judged again; a key left behind goes stale and is taken over. */
  async function abandon(keys: IdempotentBatchRef, jobs: readonly Candidate[], log: FastifyBaseLogger): Promise<void> {
    await pg(() => abandonIdempotentRequests(db, keys, jobs.map((job) => job.idempotencyKey))).catch((abandonError: unknown) =>
      log.warn({ err: abandonError, keys: jobs.length }, 'could not abandon the idempotency keys'),
    );
  }

  async function acceptBatch(kind: AnyJobKind, request: FastifyRequest): Promise<{ results: ItemResult[] }> {
    const { tenantId } = auth.principal(request);
    if (request.headers['idempotency-key'] !== undefined) {
      throw new HttpProblem(400, 'A batch takes a key per job (jobs[].idempotencyKey), not an Idempotency-Key header', { type: '/problems/validation' });
    }
    const { jobs } = parseOrThrow(envelope, request.body, 'The request body', 422);
    const results: ItemResult[] = [];
    const candidates = prepareAll(kind, tenantId, jobs, results);

    const outcomes =
      candidates.length === 0
        ? []
        : await pg(() =>
            beginIdempotentRequests(db, {
              tenantId,
              scope: kind.name,
              requests: candidates.map(({ idempotencyKey: key, requestHash, jobId }) => ({ key, requestHash, jobId })),
              ...idempotencyTimes(config),
            }),
          );
    const claimed: Candidate[] = [];
    for (const [job, outcome] of inOrder(candidates, outcomes)) {
      const claim = claimOf(outcome, job.idempotencyKey);
      if (claim.kind === 'new') claimed.push(job);
      else if (claim.kind === 'replay') results.push(accepted(job.index, claim.statusCode, claim.stored, true));
      else results.push(refused(job.index, job.idempotencyKey, claim.problem));
    }
    if (claimed.length > 0) results.push(...(await acceptClaimed(kind, tenantId, claimed, request.log)));
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
