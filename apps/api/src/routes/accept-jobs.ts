import type { Config } from '@jobfleet/config';
import {
  abandonIdempotentRequests,
  beginIdempotentRequests,
  completeIdempotentRequests,
  recordAcceptedJobs,
  recordEnqueuedMany,
  type Db,
  type IdempotencyKeyRef,
  type TenantLimitsCache,
} from '@jobfleet/db';
import { createGroupCommit } from '@jobfleet/group-commit';
import type { AnyJobKind } from '@jobfleet/kinds';
import { enqueueMany, type Admission, type TenantCapacity } from '@jobfleet/queue';
import { intakeRefusal, type DegradationView } from '@jobfleet/resilience';
import type { Queue } from 'bullmq';
import type { FastifyBaseLogger } from 'fastify';
import { callPostgres as pg, type DependencyCall } from '../dependencies';
import { HttpProblem } from '../problem';
import { claimOf, idempotencyTimes, kindRefusal, queueFor, quotaProblem, takeBackJob, type PreparedJob, type StoredResponse } from './job-intake';

/**
 * Accepting jobs, for any number at once: the jobs of a batch request, or the single-job requests
 * that arrive together, gathered by a group commit. Each step is done for all the jobs in one call
 * (a statement, a script call, an addBulk) whatever their tenants and kinds, so that under load a
 * request costs a fraction of a round trip to Postgres and Redis instead of several.
 *
 * The steps: claim the idempotency keys (Postgres), the kind's own admission (cached per
 * admission key), the quotas (one script call per tenant and kind), the sync rows (one statement),
 * the enqueue (addBulk per queue), then storing the answers and the jobs' rows for the admin API
 * (two statements, sent side by side). A job's 202 is sent only
 * after its stored answer is committed, so an accepted request survives a crash of this process.
 */

/** A valid job request of a tenant, prepared (prepareJob) and ready to accept. */
export interface JobToAccept extends PreparedJob {
  kind: AnyJobKind;
  tenantId: string;
}

/** What became of a job: the answer to send (first, or replayed), or the problem refusing it. */
export type AcceptOutcome = { accepted: true; statusCode: number; stored: StoredResponse; replayed: boolean } | { accepted: false; problem: HttpProblem };

export interface JobAcceptor {
  /** The outcome of each of `jobs` (distinct keys), in order. Throws when a dependency failed: then nothing was promised. */
  acceptAll(jobs: readonly JobToAccept[], log: FastifyBaseLogger): Promise<AcceptOutcome[]>;
  /** One job, accepted together with the jobs of the requests being accepted at the same time. */
  accept(job: JobToAccept): Promise<AcceptOutcome>;
  /** Resolves once every job passed to `accept` so far has its outcome: before Postgres and Redis close. */
  drain(): Promise<void>;
}

export interface JobAcceptorDeps {
  config: Config;
  db: Db;
  queues: Readonly<Record<string, Queue>>;
  /** Redis calls over the connection of a queue's Redis (its jobs and its tenants' capacity counters). */
  redisOf: (queue: string) => DependencyCall;
  capacity: TenantCapacity;
  limits: TenantLimitsCache;
  /** The fleet's degradation level: what it sheds is refused before anything is claimed. */
  degradation: DegradationView;
  /** The 503 of a kind or tenant whose intake is switched off (fleet-controls.ts); undefined: open. Asked before anything is claimed. */
  intakeRefusal: (kind: string, tenantId: string) => HttpProblem | undefined;
  /** Where the gathered requests' warnings go: they belong to no single request. */
  log: FastifyBaseLogger;
  /**
   * How long a kind's admission of (tenant, admission key) is reused: how late, at most, a
   * removed connection starts to refuse enqueues here (the worker checks again before any call).
   * Refusals are never reused. Default 5000 ms, as the API key cache.
   */
  admissionCacheTtlMs?: number;
}

// Beyond this many (tenant, kind, admission key) entries the cache starts over, so it stays bounded.
const ADMISSION_CACHE_MAX_ENTRIES = 10_000;

/** Pairs each item with the answer at its position: every bulk call answers in the order asked. */
export function inOrder<T, A>(items: readonly T[], answers: readonly A[]): [T, A][] {
  if (answers.length !== items.length) throw new Error(`expected ${items.length} answers, got ${answers.length}`);
  return items.map((item, index) => [item, answers[index] as A]);
}

/** The items grouped by `keyOf`, each group in the items' order. */
function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): T[][] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [item]);
    else group.push(item);
  }
  return [...groups.values()];
}

const tenantKindOf = (job: JobToAccept) => JSON.stringify([job.tenantId, job.kind.name]);
const idempotencyKeyOf = ({ ref }: JobToAccept) => JSON.stringify([ref.tenantId, ref.scope, ref.key]);

/** Accepted, or refused, jobs of one call, by job. */
type Outcomes = Map<JobToAccept, AcceptOutcome>;

export function createJobAcceptor({
  config,
  db,
  queues,
  redisOf,
  capacity,
  limits,
  degradation,
  intakeRefusal: switchRefusal,
  log: acceptorLog,
  admissionCacheTtlMs = 5000,
}: JobAcceptorDeps): JobAcceptor {
  /**
   * Throws the 503 of a request whose intake is closed: its kind or tenant switched off, or shed
   * by the fleet's degradation level (intakeRefusal), each as this process last read it. Before
   * any key is claimed, so nothing is left to take back.
   */
  async function refuseClosedIntake(jobs: readonly JobToAccept[], batch: boolean): Promise<void> {
    const first = jobs[0];
    if (first === undefined) return;
    for (const job of jobs) {
      const switchedOff = switchRefusal(job.kind.name, job.tenantId);
      if (switchedOff) throw switchedOff;
    }
    const { level } = degradation.current();
    const why = await intakeRefusal(level, {
      batch,
      lowPriority: jobs.some((job) => job.kind.intake.lowPriority === true),
      // The limits cache answers without Postgres for a tenant seen lately; an unknown tier is not a priority one.
      priorityTier: () =>
        pg(() => limits.limitsOf(first.tenantId)).then(
          (tenantLimits) => config.degradation.priorityTiers.includes(tenantLimits.tier),
          () => false,
        ),
    });
    if (why === undefined) return;
    const retryAfter = config.degradation.retryAfterSeconds;
    throw new HttpProblem(503, `The fleet is degraded to ${level}: ${why}; retry after ${retryAfter} s`, {
      type: '/problems/degraded',
      headers: { 'retry-after': String(retryAfter) },
      extensions: { level },
    });
  }

  // (tenant, kind, admission key) -> until when its admission stands.
  const admittedUntil = new Map<string, number>();

  /**
   * The kind's own admission of each job, asked once per (tenant, kind, admission key) (the
   * calendar, the CUIT), not again for admissionCacheTtlMs once admitted, and once per job for a
   * kind without an admission key.
   */
  function kindRefusals(jobs: readonly JobToAccept[]): Promise<(HttpProblem | undefined)[]> {
    const asked = new Map<string, Promise<HttpProblem | undefined>>();
    const now = Date.now();
    return Promise.all(
      jobs.map((job) => {
        const ask = () => kindRefusal(job.kind, { config, db, tenantId: job.tenantId }, job.request);
        const admissionKey = job.kind.intake.admissionKey?.(job.request);
        if (admissionKey === undefined) return ask();
        const key = JSON.stringify([job.tenantId, job.kind.name, admissionKey]);
        if ((admittedUntil.get(key) ?? 0) > now) return Promise.resolve(undefined);
        let answer = asked.get(key);
        if (answer === undefined) {
          answer = ask().then((problem) => {
            if (problem === undefined && admissionCacheTtlMs > 0) {
              if (admittedUntil.size >= ADMISSION_CACHE_MAX_ENTRIES) admittedUntil.clear();
              admittedUntil.set(key, now + admissionCacheTtlMs);
            }
            return problem;
          });
          asked.set(key, answer);
        }
        return answer;
      }),
    );
  }

  /** The quota admission of each job: admitMany per tenant and kind, all at once (tenant capacity sends them to each Redis as one script call). */
  async function admissions(jobs: readonly JobToAccept[], now: number): Promise<Map<JobToAccept, Admission>> {
    const groups = groupBy(jobs, tenantKindOf);
    const judged = await Promise.all(
      groups.map(async (group) => {
        const { tenantId, kind } = group[0] as JobToAccept;
        const quotas = (await pg(() => limits.limitsOf(tenantId))).quotas(kind.name);
        const answers = await redisOf(kind.name)(() => capacity.admitMany({ kind: kind.name, tenantId }, group.map((job) => job.jobId), quotas, now));
        return inOrder(group, answers);
      }),
    );
    return new Map(judged.flat());
  }

  /** Takes back what was done for jobs that will not be accepted after all; never throws. */
  async function takeBack(enqueuedHere: readonly JobToAccept[], counted: readonly JobToAccept[], log: FastifyBaseLogger): Promise<void> {
    const gone = await Promise.all(enqueuedHere.map((job) => takeBackJob(redisOf(job.kind.name), queueFor(queues, job.kind.name), job.jobId, log)));
    // A job a worker has already stays, and keeps counting until it finishes.
    const stays = new Set(inOrder(enqueuedHere, gone).flatMap(([job, removed]) => (removed ? [] : [job])));
    const withdrawn = counted.filter((job) => !stays.has(job));
    await Promise.all(
      groupBy(withdrawn, tenantKindOf).map((group) => {
        const { tenantId, kind } = group[0] as JobToAccept;
        return redisOf(kind.name)(() => capacity.withdrawMany({ kind: kind.name, tenantId }, group.map((job) => job.jobId))).catch((error: unknown) =>
          log.warn({ err: error, jobIds: group.map((job) => job.jobId) }, 'could not take back the quota of a failed request'),
        );
      }),
    );
  }

  /** Frees the keys of jobs not accepted, so a retry is judged again; a key left behind goes stale and is taken over. */
  async function abandon(jobs: readonly JobToAccept[], log: FastifyBaseLogger): Promise<void> {
    const refs: IdempotencyKeyRef[] = jobs.map((job) => job.ref);
    await pg(() => abandonIdempotentRequests(db, refs)).catch((error: unknown) => log.warn({ err: error, keys: refs.length }, 'could not abandon the idempotency keys'));
  }

  /**
   * Accepts the jobs whose keys this call claimed, or refuses them as a kind or a quota does. If a
   * step fails, nothing is promised: what was done for them is taken back and the error thrown.
   */
  async function acceptClaimed(claimed: readonly JobToAccept[], outcomes: Outcomes, log: FastifyBaseLogger): Promise<void> {
    const refusedJobs: JobToAccept[] = [];
    const refuse = (job: JobToAccept, problem: HttpProblem) => {
      refusedJobs.push(job);
      outcomes.set(job, { accepted: false, problem });
    };
    const counted: JobToAccept[] = [];
    const enqueuedHere: JobToAccept[] = [];
    try {
      // Judged after the keys are ours, so a replay of an accepted job still gets its first answer.
      const admissible: JobToAccept[] = [];
      for (const [job, problem] of inOrder(claimed, await kindRefusals(claimed))) {
        if (problem === undefined) admissible.push(job);
        else refuse(job, problem);
      }

      const now = Date.now();
      const toEnqueue: { job: JobToAccept; priority: number }[] = [];
      for (const [job, admission] of await admissions(admissible, now)) {
        if (!admission.admitted) {
          refuse(job, quotaProblem(admission, job.kind.name, now));
          continue;
        }
        if (admission.counted) counted.push(job);
        toEnqueue.push({ job, priority: admission.priority });
      }

      if (toEnqueue.length > 0) {
        const rows = toEnqueue.flatMap(({ job }) => (job.sync === null ? [] : [job.sync]));
        // Written before the enqueue, so a failing write leaves nothing in Redis.
        if (rows.length > 0) await pg(() => recordEnqueuedMany(db, rows));
        // A timed-out enqueue may still land; a retry then meets its jobs under the same ids.
        const perQueue = groupBy(toEnqueue, ({ job }) => job.kind.name);
        const enqueued = await Promise.all(
          perQueue.map(async (group) => {
            const { name } = (group[0] as (typeof toEnqueue)[number]).job.kind;
            return inOrder(group, await redisOf(name)(() => enqueueMany(queueFor(queues, name), group.map(({ job, priority }) => ({ ...job.job, priority })))));
          }),
        );
        const kept: string[] = [];
        for (const [{ job }, { created }] of enqueued.flat()) {
          if (created) enqueuedHere.push(job);
          else kept.push(job.jobId);
        }
        // Expected after a stale takeover; after an expired key was reused it means Redis still
        // holds the old job under this id, and that job (not this body) is what runs.
        if (kept.length > 0) log.warn({ jobIds: kept }, 'job ids already in Redis: the existing jobs were kept');
        await Promise.all([
          pg(() => completeIdempotentRequests(db, toEnqueue.map(({ job }) => ({ ...job.ref, statusCode: 202, response: job.stored })))),
          // The admin API's rows of the jobs added now (a kept job has its row). Not a reason to
          // refuse jobs already queued: a job's first attempt writes its row anyway.
          pg(() => recordAcceptedJobs(db, enqueuedHere.map((job) => job.identity))).catch((error: unknown) =>
            log.warn({ err: error, jobIds: enqueuedHere.map((job) => job.jobId) }, 'could not record the accepted jobs for the admin API'),
          ),
        ]);
        for (const { job } of toEnqueue) outcomes.set(job, { accepted: true, statusCode: 202, stored: job.stored, replayed: false });
      }
    } catch (error) {
      await takeBack(enqueuedHere, counted, log);
      await abandon(claimed, log);
      throw error;
    }
    // Refused jobs free their keys, so a corrected retry is judged again.
    if (refusedJobs.length > 0) await abandon(refusedJobs, log);
  }

  async function acceptAll(jobs: readonly JobToAccept[], log: FastifyBaseLogger): Promise<AcceptOutcome[]> {
    if (jobs.length === 0) return [];
    const begun = await pg(() =>
      beginIdempotentRequests(db, {
        requests: jobs.map(({ ref, requestHash, jobId }) => ({ ...ref, requestHash, jobId })),
        ...idempotencyTimes(config),
      }),
    );
    const outcomes: Outcomes = new Map();
    const claimed: JobToAccept[] = [];
    for (const [job, begin] of inOrder(jobs, begun)) {
      const claim = claimOf(begin, job.idempotencyKey);
      if (claim.kind === 'new') claimed.push(job);
      else if (claim.kind === 'replay') outcomes.set(job, { accepted: true, statusCode: claim.statusCode, stored: claim.stored, replayed: true });
      else outcomes.set(job, { accepted: false, problem: claim.problem });
    }
    if (claimed.length > 0) await acceptClaimed(claimed, outcomes, log);
    return jobs.map((job) => {
      const outcome = outcomes.get(job);
      if (outcome === undefined) throw new Error(`job ${job.jobId} was neither accepted nor refused`);
      return outcome;
    });
  }

  // Two requests with one key never share a call (its statements take distinct keys): the later
  // waits for the next, and meets the first's answer as a replay.
  const gathered = createGroupCommit<JobToAccept, AcceptOutcome>({
    flush: (jobs) => acceptAll(jobs, acceptorLog),
    conflictKey: idempotencyKeyOf,
    maxBatch: config.api.batch.maxJobs,
    maxInFlight: config.api.acceptConcurrency,
  });

  return {
    acceptAll: async (jobs, log) => {
      await refuseClosedIntake(jobs, true);
      return acceptAll(jobs, log);
    },
    accept: async (job) => {
      await refuseClosedIntake([job], false);
      return gathered.submit(job);
    },
    drain: () => gathered.drain(),
  };
}
