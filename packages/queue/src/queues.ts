import { hash } from 'node:crypto';
import type { Config, WorkerQueueSettings } from '@jobfleet/config';
import type { Logger } from '@jobfleet/observability';
import { Queue, type JobsOptions, type Telemetry } from 'bullmq';
import type { RedisClient } from './connection';

export type QueueConfig = Pick<Config, 'jobs' | 'worker'>;

/** The worker settings of a job kind: its own, or the WORKER_* defaults for a kind config does not name. */
export function settingsFor(queue: string, config: Pick<Config, 'worker'>): WorkerQueueSettings {
  return config.worker.perQueue[queue] ?? config.worker.defaults;
}

/** Default options of every job of `queue`: attempts, jittered exponential backoff, bounded retention. */
export function jobOptionsFor(queue: string, config: QueueConfig): JobsOptions {
  const { jobs } = config;
  return {
    attempts: settingsFor(queue, config).attempts,
    // jitter 0.5: each delay is drawn from [d/2, d], so retries after an outage spread out.
    backoff: { type: 'exponential', delay: jobs.backoffDelayMs, jitter: 0.5 },
    removeOnComplete: { ...jobs.removeOnComplete },
    removeOnFail: { ...jobs.removeOnFail },
  };
}

export interface CreateQueuesOptions<K extends string> {
  /** The queue names: the job kinds of the registry. */
  names: readonly K[];
  /**
   * A producer-role connection, shared by the queues and left open by closeQueues, or the one of
   * each queue's Redis (RedisConnections.forQueue). While it is not ready (Redis down, or still
   * connecting at startup) every call of its queues is refused at once.
   */
  connection: RedisClient | ((queue: string) => RedisClient);
  /** Key prefix of every queue (hash-tag it on Redis Cluster). */
  prefix: string;
  config: QueueConfig;
  /** Logs queue errors at warn. Default: ignored (they repeat the connection's own errors). */
  logger?: Logger;
  /** Producer spans for adds, their context carried in each job (Tracing.queueTelemetry). Default: none. */
  telemetry?: Telemetry | undefined;
}

/** One BullMQ Queue per job kind, each with its default job options. */
export function createQueues<K extends string>(options: CreateQueuesOptions<K>): Record<K, Queue> {
  const entries = options.names.map((name) => {
    const queue = new Queue(name, {
      connection: typeof options.connection === 'function' ? options.connection(name) : options.connection,
      prefix: options.prefix,
      defaultJobOptions: jobOptionsFor(name, options.config),
      // Fail fast on the request path: by default BullMQ waits (forever) for the connection to be
      // ready and then checks the server version with INFO, which on a connection without offline
      // queue fails once and breaks the queue for good. Workers keep the version check.
      skipWaitingForReady: true,
      skipVersionCheck: true,
      ...(options.telemetry ? { telemetry: options.telemetry } : {}),
    });
    queue.on('error', (err: Error) => options.logger?.warn({ err, queue: name }, 'queue error'));
    return [name, queue] as const;
  });
  return Object.fromEntries(entries) as Record<K, Queue>;
}

/** Closes every queue; the shared connection stays open for its owner to close. */
export async function closeQueues(queues: Readonly<Record<string, Queue>> | readonly Queue[]): Promise<void> {
  const results = await Promise.allSettled(Object.values(queues).map((queue) => queue.close()));
  const errors = results.flatMap((r): unknown[] => (r.status === 'rejected' ? [r.reason] : []));
  if (errors.length > 0) throw new AggregateError(errors, 'closing queues failed');
}

// BullMQ 6.7 refuses custom ids that are integer-like or contain ':' (Job.validateOptions).
const UNSAFE_ID_CHARS = /[^\w.-]/g;
const MAX_TENANT_CHARS = 64;

/**
 * The job id of (tenant, idempotency key): `<tenant>-<sha256 hex>`, the same on every call, so Redis
 * itself refuses a duplicate while the first job is retained. The tenant part is for reading only
 * (characters BullMQ could refuse become `_`); the hash covers the exact tenant and key.
 */
export function jobIdFor(tenantId: string, idempotencyKey: string): string {
  // The one-shot hash: a third of createHash's cost for an input this small, the same digest.
  const digest = hash('sha256', JSON.stringify([tenantId, idempotencyKey]), 'hex');
  const readable = tenantId.replace(UNSAFE_ID_CHARS, '_').slice(0, MAX_TENANT_CHARS);
  return `${readable}-${digest}`;
}

export interface EnqueueJob {
  /** From jobIdFor. */
  jobId: string;
  name: string;
  data: unknown;
  /** BullMQ priority (1 = most urgent): the tenant's fair-share position (tenant-capacity.ts). */
  priority?: number;
}

const jobOptions = (job: EnqueueJob): JobsOptions => ({ jobId: job.jobId, ...(job.priority === undefined ? {} : { priority: job.priority }) });

/**
 * Adds jobs with distinct ids, each under its id, in two round trips: BullMQ's addBulk (one
 * pipeline of adds) and one pipeline reading each stored job's timestamp and data back (HMGET).
 * `created` is false where a job with that id was already there: BullMQ then keeps the stored
 * job, answers with the id and no error, and returns our own unsaved copy, as it does for a new
 * job. Only two adds of identical data under one id in the same millisecond both see
 * `created: true`, which is harmless (same job); the API's Postgres idempotency record refuses that
 * case first anyway (409 while the first request is being accepted). A job already removed again
 * when read back counts as created. The data is compared as the JSON text BullMQ stored (it writes
 * JSON.stringify of the data), which spares parsing every job back. An HMGET a job rather than one
 * script call for all: a script call costs Redis more (5.5 against 2 µs a job at 100 jobs, and a
 * script call more per job where the acceptor gathers one), and Redis is the fleet's scarce core.
 * Results come in the order of `jobs`.
 */
export async function enqueueMany(queue: Queue, jobs: readonly EnqueueJob[]): Promise<{ jobId: string; created: boolean }[]> {
  if (jobs.length === 0) return [];
  const sent = await queue.addBulk(jobs.map((job) => ({ name: job.name, data: job.data, opts: jobOptions(job) })));
  const readBack = (await queue.getBackend().client).pipeline();
  for (const job of jobs) readBack.runCommand('hmget', [queue.toKey(job.jobId), 'timestamp', 'data']);
  const replies: [Error | null, unknown][] = (await readBack.exec()) ?? [];
  return jobs.map((job, index) => {
    const [error, fields] = replies[index] ?? [new Error(`no reply for job ${job.jobId}`), undefined];
    if (error) throw error;
    const [timestamp, data] = Array.isArray(fields) ? (fields as (string | null)[]) : [];
    // Gone already (a worker finished it and retention removed it): it was ours.
    if (timestamp == null || data == null) return { jobId: job.jobId, created: true };
    const created = Number(timestamp) === (sent[index]?.timestamp ?? Number.NaN) && data === JSON.stringify(job.data ?? {});
    return { jobId: job.jobId, created };
  });
}
