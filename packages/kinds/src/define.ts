import type { Config } from '@jobfleet/config';
import type { Database, Db } from '@jobfleet/db';
import { JOB_KEY_ATTRIBUTE, jobKeyOf } from '@jobfleet/controls';
import type { LockManager } from '@jobfleet/locks';
import type { Client, EvaluationContext } from '@openfeature/server-sdk';
import type { Logger, Metrics } from '@jobfleet/observability';
import type { AttemptDecision, JobProcessor, RedisConnections } from '@jobfleet/queue';
import type { Dependency, DependencyGuard } from '@jobfleet/resilience';
import type { Keyring } from '@jobfleet/secrets';
import type { Job } from 'bullmq';
import { z } from 'zod';

/** Who may enqueue a kind: producers (`jobs:write`), a tenant's admins, or the fleet's operators. */
export type EnqueueScope = 'jobs:write' | 'admin' | 'fleet:admin';

/** What the API knows when it judges a request beyond its schema. */
export interface AdmissionContext {
  config: Config;
  db: Db;
  tenantId: string;
}

/** An admission's refusal; the API answers it as problem+json with this status and type. */
export class AdmissionRefusal extends Error {
  override readonly name = 'AdmissionRefusal';
  constructor(
    readonly status: 403 | 422,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * How the API takes one kind's jobs. (Method syntax on purpose: it lets the registry hold every
 * kind as `JobKind<unknown>`, each method getting back what its own schema produced.)
 */
export interface KindIntake<Req> {
  /** One line for the API docs. */
  summary: string;
  /** The entity whose sync status the job reports (reservation id, invoice id, definition). */
  entityId(request: Req): string;
  /** Monotonic version of the entity; 0 where the entity has none. */
  version(request: Req): number;
  /** The natural key of the request: a resend of the same thing replays instead of duplicating. */
  defaultIdempotencyKey(request: Req): string;
  /** How the default key is built, for the docs. */
  defaultKeyDescription: string;
  /** The BullMQ job name, shown in Bull Board. */
  jobName(request: Req): string;
  requiredScope: EnqueueScope;
  /**
   * Refuses a valid request that this tenant or deployment may not run (a CUIT it does not own, a
   * backup definition not configured), before anything is enqueued: throw an `AdmissionRefusal`.
   */
  admit?(context: AdmissionContext, request: Req): Promise<void>;
  /**
   * What `admit` judges beyond the tenant (the calendar, the CUIT): requests with the same key are
   * admitted alike, so a batch asks once per key. Without it, `admit` runs for every job.
   */
  admissionKey?(request: Req): string;
  /** Work that can wait (an on-demand backup): refused first when the fleet degrades (LIMITED and worse). */
  lowPriority?: boolean;
}

/** The processes' shared infrastructure a kind's worker half builds its connections from. */
export interface KindWorkerContext {
  config: Config;
  database: Database;
  /** The worker-role Redis connections: `main` for fleet-wide state, `forQueue` for a queue's own keys. */
  redis: RedisConnections;
  logger: Logger;
  metrics: Metrics;
  guards: Readonly<Record<Dependency, DependencyGuard>>;
  keyring: Keyring;
  /** The fleet-wide audited lock manager, created on first use. */
  locks: () => LockManager;
  /**
   * Feature flags (OpenFeature). Evaluate with `flagContext(job, tenantId)`: the tenant is the
   * targeting key, and the job ties the evaluation to the attempt's outcome for the automatic rollback.
   */
  flags: Client;
}

/** The evaluation context of a flag evaluated for one attempt of `job`. */
export function flagContext(job: { queueName: string; id?: string }, tenantId: string): EvaluationContext {
  return { targetingKey: tenantId, [JOB_KEY_ATTRIBUTE]: jobKeyOf(job.queueName, job.id) };
}

/** What a kind runs with in a process that serves it. */
export interface KindRuntime {
  processor: JobProcessor<unknown, unknown>;
  /**
   * Records the attempt policy's decision after a failed attempt where the kind keeps its status
   * (default for kinds with a `syncKind`: the entity's sync_status row).
   */
  onDecision?(job: Job, decision: AttemptDecision, error: Error, attempt: number): Promise<void>;
  /** A job failed without its processor (stalled past maxStalledCount): record it like a failure. */
  onUnprocessedFailure?(job: Job, error: Error): Promise<void>;
  /** Releases the kind's connections on shutdown. */
  close?(): Promise<void>;
}

/** The half of a kind that only worker processes load (it may import connector packages). */
export interface KindWorker {
  start(context: KindWorkerContext): Promise<KindRuntime>;
}

export interface JobKindDefinition<Req, Name extends string = string> {
  /** The queue name, the route (`POST /v1/jobs/<name>`), the QUEUES entry. */
  name: Name;
  /** What a producer POSTs. */
  requestSchema: z.ZodType<Req>;
  intake: KindIntake<Req>;
  /** The `sync_status.kind` its jobs report under; null for a kind whose runs keep their own table. */
  syncKind: string | null;
  /** Hard bound of one attempt, from this kind's slice of the config. */
  attemptTimeoutMs(config: Config): number;
  /**
   * Loads the worker half. Lazy on purpose: the API and processes that do not serve this kind
   * never load its connectors (googleapis, soap, the AWS SDK).
   */
  worker(): Promise<KindWorker>;
}

/** The job data every kind stores in Redis: the request plus who asked under which key. */
export function jobDataSchema<Req>(requestSchema: z.ZodType<Req>) {
  return z.object({
    tenantId: z.string().min(1),
    idempotencyKey: z.string().min(1),
    request: requestSchema,
    // Optional so jobs enqueued before a field was added still parse.
    enqueuedAt: z.iso.datetime().optional(),
    // The API request that enqueued it (X-Request-Id), for the worker's logs.
    requestId: z.string().optional(),
  });
}

/** What a job of a kind holds in Redis, unless the kind says otherwise. */
export interface JobData<Req> {
  tenantId: string;
  idempotencyKey: string;
  request: Req;
  enqueuedAt?: string | undefined;
  requestId?: string | undefined;
}

export interface JobKind<Req = unknown, Data = JobData<Req>, Name extends string = string> extends JobKindDefinition<Req, Name> {
  /** Parses `job.data`; a payload that does not parse fails that job alone. */
  jobSchema: z.ZodType<Data>;
}

/**
 * One kind, everything that makes it in one place; list it in the registry (`JOB_KINDS`). Its
 * result type is its processor's; the request type comes from its schema.
 */
export function defineJobKind<Req, const Name extends string>(definition: JobKindDefinition<Req, Name>): JobKind<Req, JobData<Req>, Name>;
/** A kind whose jobs hold something else than `JobData` (backups started by a scheduler carry no tenant). */
export function defineJobKind<Req, Data, const Name extends string>(
  definition: JobKindDefinition<Req, Name> & { jobSchema: z.ZodType<Data> },
): JobKind<Req, Data, Name>;
export function defineJobKind<Req, Data, const Name extends string>(
  definition: JobKindDefinition<Req, Name> & { jobSchema?: z.ZodType<Data> },
): JobKind<Req, Data | JobData<Req>, Name> {
  return { ...definition, jobSchema: definition.jobSchema ?? jobDataSchema(definition.requestSchema) };
}

/** A kind whose request type generic code does not know: what the registry holds. */
export type AnyJobKind = JobKind<unknown, unknown>;
