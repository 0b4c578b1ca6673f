import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { withDeadline } from './readiness';

/**
 * What became of one attempt of a job, the `outcome` label of `jobs_total`:
 * - `completed`: the processor returned;
 * - `retried`: it failed and BullMQ will run it again after the backoff;
 * - `failed`: it failed for good (permanent error, last attempt, or stalled too often);
 * - `delayed`: the processor re-scheduled it (DelayedError and friends), spending no attempt;
 * - `interrupted`: a hard shutdown abandoned it; stalled-job recovery runs it again.
 * Stalls are counted apart, in `jobs_stalled_total`, by the worker that detects them.
 */
export const JOB_OUTCOMES = ['completed', 'retried', 'failed', 'delayed', 'interrupted'] as const;
export type JobOutcome = (typeof JOB_OUTCOMES)[number];

/** The `state` label of `queue_jobs`. */
export const QUEUE_JOB_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'failed',
  'completed',
  'paused',
  'waiting-children',
] as const;
export type QueueJobState = (typeof QUEUE_JOB_STATES)[number];

/** The `operation` and `result` labels of `lock_operations_total`. */
export const LOCK_OPERATION_RESULTS = {
  acquire: ['acquired', 'unavailable', 'error'],
  extend: ['extended', 'lost', 'error'],
  release: ['released', 'expired', 'error'],
} as const;
export type LockOperation = keyof typeof LOCK_OPERATION_RESULTS;
export type LockOperationResult<O extends LockOperation = LockOperation> = (typeof LOCK_OPERATION_RESULTS)[O][number];

/**
 * Why a job went back to delayed without spending an attempt, the `reason` label of
 * `jobs_deferred_total`; `dependency` names the dependency for the first two, else is `none`;
 * `paused` is a kill switch pausing the job's tenant or kind; `tenant-capacity` is the tenant's
 * running-jobs quota being full (or unreadable).
 */
export const DEFERRAL_REASONS = ['dependency-unavailable', 'rate-limited', 'lock-busy', 'worker-busy', 'paused', 'tenant-capacity', 'other'] as const;
export type DeferralReason = (typeof DEFERRAL_REASONS)[number];

/**
 * The `result` label of `afip_wsaa_tickets_total`, one per ticket asked for:
 * - `cached`: served from the fleet's shared cache;
 * - `issued`: a WSAA login issued a new ticket;
 * - `kept`: WSAA refused an early refresh, the cached ticket is used until it expires;
 * - `lost`: WSAA holds a ticket the fleet lost, logins are refused and the job waits.
 */
export const WSAA_TICKET_RESULTS = ['cached', 'issued', 'kept', 'lost'] as const;

/** What `postgres_pool_*` read from a pg Pool (its own field names), at scrape time. */
export interface PostgresPoolStats {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly max: number;
}

/** What `redis_memory_*` read from a Redis connection: `INFO memory`. */
export interface RedisInfoSource {
  info(section: 'memory'): Promise<string>;
}

export interface MetricsOptions {
  /** Prepended to every metric name, process metrics included. Default: none. */
  prefix?: string;
  /** Labels added to every series of this registry (e.g. `{ service: 'api' }`). Default: none. */
  defaultLabels?: Record<string, string>;
}

export interface Metrics {
  /** This instance's own registry; serve `registry.metrics()` with `registry.contentType`. */
  readonly registry: Registry;
  /** `fleet_degradation_level`: the fleet-wide degradation level this process acts on, 0 NORMAL to 4 EMERGENCY. */
  readonly fleetDegradationLevel: Gauge;
  /** `jobs_total{queue,outcome}`: attempts by outcome (see JOB_OUTCOMES). */
  readonly jobsTotal: Counter<'queue' | 'outcome'>;
  /** `job_duration_seconds{queue}`: processing time of each attempt. */
  readonly jobDuration: Histogram<'queue'>;
  /** `job_wait_seconds{queue}`: from enqueue (plus any requested delay) to the first start. */
  readonly jobWait: Histogram<'queue'>;
  /** `jobs_stalled_total{queue}`: jobs found stalled (lock lost) and moved back to wait. */
  readonly jobsStalled: Counter<'queue'>;
  /** `feature_flag_rollbacks_total{flag}`: flags this process turned off for their variant's failure ratio. */
  readonly featureFlagRollbacks: Counter<'flag'>;
  /** `queue_jobs{queue,state}`: jobs per state, read from Redis at scrape time (registerQueueGauges). */
  readonly queueJobs: Gauge<'queue' | 'state'>;
  /**
   * `queue_oldest_waiting_job_age_seconds{queue}`: how long the oldest job of the wait list, or the
   * next prioritized one, has waited since its enqueue (plus the delay it was last given), read at
   * scrape time with `queue_jobs` (see registerQueueGauges); 0 when none waits.
   */
  readonly queueOldestWaitingAge: Gauge<'queue'>;
  /**
   * `jobs_deferred_total{queue,reason,dependency}`: jobs put back to delayed without spending an
   * attempt (see DEFERRAL_REASONS); `dependency` is bounded by the config's dependency list.
   */
  readonly jobsDeferred: Counter<'queue' | 'reason' | 'dependency'>;
  /** `afip_wsaa_tickets_total{result}`: WSAA tickets asked for, by how they were served (see WSAA_TICKET_RESULTS). */
  readonly wsaaTickets: Counter<'result'>;
  /** `queue_metrics_collect_errors_total{queue}`: scrapes that could not read a queue's counts. */
  readonly queueCollectErrors: Counter<'queue'>;
  /** `postgres_statements_total`: statements this process sent; per job or request, the cost group commit keeps low. */
  readonly postgresStatements: Counter;
  /** `http_requests_total{method,route,status_code}`. */
  readonly httpRequests: Counter<'method' | 'route' | 'status_code'>;
  /** `http_request_duration_seconds{method,route}`. */
  readonly httpRequestDuration: Histogram<'method' | 'route'>;
  /**
   * `lock_operations_total{operation,result}`: see LOCK_OPERATION_RESULTS for the pairs.
   * `extend`/`lost` also counts a lock whose ttl passed without a successful extension.
   */
  readonly lockOperations: Counter<'operation' | 'result'>;
  /**
   * `lock_conflicts_total{lock}`: acquire attempts refused because another owner held the lock.
   * `lock` is the key's family, the part before the first ':' (`afip` for `afip:30712345671:1:1`),
   * never the whole key, so the number of series stays bounded.
   */
  readonly lockConflicts: Counter<'lock'>;
  /** `lock_extensions_total{result}`: every extension, automatic or asked for (extended|lost|error). */
  readonly lockExtensions: Counter<'result'>;
  /** `lock_hold_seconds{lock}`: from acquire to release or loss; `lock` as in lock_conflicts_total. */
  readonly lockHoldSeconds: Histogram<'lock'>;
  /**
   * `lock_audit_write_failures_total{reason}`: `dropped` counts audit events lost for good (buffer
   * full, or still unwritten at shutdown); `error` counts failed batch writes, whose events stay
   * buffered and are retried.
   */
  readonly lockAuditWriteFailures: Counter<'reason'>;
  /** `lock_audit_buffered_events`: audit events waiting to be written to Postgres. */
  readonly lockAuditBuffered: Gauge;
  /** `circuit_breaker_state{dependency}`: 0 closed, 1 half-open, 2 open (this process's breaker). */
  readonly breakerState: Gauge<'dependency'>;
  /** `circuit_breaker_transitions_total{dependency,to}`. */
  readonly breakerTransitions: Counter<'dependency' | 'to'>;
  /** `dependency_call_duration_seconds{dependency,operation,result}`: result success|failure|timeout|rejected (breaker open). */
  readonly dependencyCallDuration: Histogram<'dependency' | 'operation' | 'result'>;
  /** `backup_runs_total{schedule,result}`: backup runs by definition and result (succeeded|failed|skipped). */
  readonly backupRuns: Counter<'schedule' | 'result'>;
  /** `backup_restore_checks_total{schedule,result}`: restore checks after a run or on their own schedule (passed|failed). */
  readonly backupRestoreChecks: Counter<'schedule' | 'result'>;
  /** `backup_duration_seconds{schedule}`: dump, restore check and retention of each finished run. */
  readonly backupDuration: Histogram<'schedule'>;
  /** `backup_bytes{schedule}`: size of the last successful backup as stored. */
  readonly backupBytes: Gauge<'schedule'>;
  /**
   * `backup_last_success_timestamp_seconds{schedule}`: when the definition last succeeded; each
   * worker sets it from Postgres at boot, so the overdue alert survives restarts.
   */
  readonly backupLastSuccess: Gauge<'schedule'>;
  /**
   * Adds work that runs each time `queue_jobs` is read, i.e. at scrape time, never on a job's
   * path. Returns a function that removes it.
   */
  onQueueJobsCollect(collect: () => Promise<void>): () => void;
  /**
   * `redis_connection_up{redis}`: 1 while this process's connection to a Redis instance (`main`, or
   * the queues a REDIS_QUEUE_URLS instance holds, e.g. `afip-sync`) is ready, read at scrape time.
   * Returns a function that stops reporting them.
   */
  watchRedisConnections(instances: ReadonlyMap<string, { readonly status: string }>): () => void;
  /**
   * `postgres_pool_connections{state}` (in-use|idle), `postgres_pool_waiting_requests` and
   * `postgres_pool_max_connections` of this process's pool, read at scrape time. `stats` answers
   * undefined for an embedded database (no pool). Returns a function that stops reporting it.
   */
  watchPostgresPool(stats: () => PostgresPoolStats | undefined): () => void;
  /**
   * `redis_memory_used_bytes{redis}` and `redis_memory_max_bytes{redis}` (maxmemory, 0 = no
   * limit) from `INFO memory` of each instance at scrape time; an instance that does not answer
   * within `timeoutMs` (default 2000) is left out of that scrape. Returns a function that stops it.
   */
  watchRedisMemory(instances: ReadonlyMap<string, RedisInfoSource>, options?: { timeoutMs?: number }): () => void;
}

// Jobs range from milliseconds (calendar) to an hour (backups).
const JOB_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600];
const BACKUP_SECONDS_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 2700, 3600, 7200];
const HTTP_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Locks are held for one critical section: an AFIP call, a token refresh, at most a backup.
const LOCK_SECONDS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** A registry of its own (never prom-client's global one) with process metrics and ours. */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const prefix = options.prefix ?? '';
  const registry = new Registry();
  if (options.defaultLabels) registry.setDefaultLabels(options.defaultLabels);
  collectDefaultMetrics({ register: registry, prefix });
  const registers = [registry];

  const queueJobsCollectors = new Set<() => Promise<void>>();
  // The collection under way, shared by the gauges it sets within one scrape; so a scrape's read
  // of the error counter also waits for the errors it finds.
  let queueJobsCollecting: Promise<void> | undefined;
  const collectQueues = (): Promise<void> =>
    (queueJobsCollecting ??= Promise.all([...queueJobsCollectors].map((collect) => collect())).then(() => {
      queueJobsCollecting = undefined;
    }));
  const queueJobs = new Gauge({
    name: `${prefix}queue_jobs`,
    help: 'Jobs per queue and state, read from Redis at scrape time',
    labelNames: ['queue', 'state'] as const,
    registers,
    collect: collectQueues,
  });
  const queueOldestWaitingAge = new Gauge({
    name: `${prefix}queue_oldest_waiting_job_age_seconds`,
    help: 'Seconds the oldest waiting job (or the next prioritized one) of each queue has waited since its enqueue plus its delay, read at scrape time',
    labelNames: ['queue'] as const,
    registers,
    collect: collectQueues,
  });

  const redisWatches = new Set<ReadonlyMap<string, { readonly status: string }>>();
  const redisUp = new Gauge({
    name: `${prefix}redis_connection_up`,
    help: "1 while this process's connection to the Redis instance is ready (main, or the queues an instance holds)",
    labelNames: ['redis'] as const,
    registers,
    collect() {
      for (const instances of redisWatches) for (const [redis, client] of instances) redisUp.set({ redis }, client.status === 'ready' ? 1 : 0);
    },
  });

  const poolWatches = new Set<() => PostgresPoolStats | undefined>();
  const readPools = (): void => {
    for (const stats of [...poolWatches].map((read) => read())) {
      if (stats === undefined) continue;
      poolConnections.set({ state: 'in-use' }, stats.totalCount - stats.idleCount);
      poolConnections.set({ state: 'idle' }, stats.idleCount);
      poolWaiting.set(stats.waitingCount);
      poolMax.set(stats.max);
    }
  };
  const poolConnections = new Gauge({
    name: `${prefix}postgres_pool_connections`,
    help: "Connections of this process's Postgres pool by state (in-use|idle), read at scrape time",
    labelNames: ['state'] as const,
    registers,
    collect: readPools,
  });
  const poolWaiting = new Gauge({
    name: `${prefix}postgres_pool_waiting_requests`,
    help: "Queries waiting for a free connection of this process's Postgres pool, read at scrape time",
    registers,
    collect: readPools,
  });
  const poolMax = new Gauge({
    name: `${prefix}postgres_pool_max_connections`,
    help: "Size limit of this process's Postgres pool",
    registers,
    collect: readPools,
  });

  const redisMemoryWatches = new Map<ReadonlyMap<string, RedisInfoSource>, number>();
  let redisMemoryReading: Promise<void> | undefined;
  const redisMemoryUsed = new Gauge({
    name: `${prefix}redis_memory_used_bytes`,
    help: 'used_memory of each Redis instance (INFO memory), read at scrape time',
    labelNames: ['redis'] as const,
    registers,
    collect: () => readRedisMemory(),
  });
  const redisMemoryMax = new Gauge({
    name: `${prefix}redis_memory_max_bytes`,
    help: 'maxmemory of each Redis instance (INFO memory), 0 when unlimited, read at scrape time',
    labelNames: ['redis'] as const,
    registers,
    collect: () => readRedisMemory(),
  });
  // One INFO per instance and scrape, shared by both gauges.
  const readRedisMemory = (): Promise<void> =>
    (redisMemoryReading ??= readEachRedisMemory().then(() => {
      redisMemoryReading = undefined;
    }));
  async function readEachRedisMemory(): Promise<void> {
    const reads = [...redisMemoryWatches].flatMap(([instances, timeoutMs]) =>
      [...instances].map(async ([redis, client]) => {
        try {
          const memory = parseInfoMemory(await withDeadline(client.info('memory'), timeoutMs, `INFO memory of ${redis}`));
          redisMemoryUsed.set({ redis }, memory.usedBytes ?? 0);
          redisMemoryMax.set({ redis }, memory.maxBytes ?? 0);
        } catch {
          // Stale numbers would mislead more than a gap does (redis_connection_up tells why).
          redisMemoryUsed.remove({ redis });
          redisMemoryMax.remove({ redis });
        }
      }),
    );
    await Promise.all(reads);
  }

  return {
    registry,
    jobsTotal: new Counter({
      name: `${prefix}jobs_total`,
      help: `Job attempts by outcome (${JOB_OUTCOMES.join('|')})`,
      labelNames: ['queue', 'outcome'] as const,
      registers,
    }),
    jobDuration: new Histogram({
      name: `${prefix}job_duration_seconds`,
      help: 'Processing time of one job attempt',
      labelNames: ['queue'] as const,
      buckets: JOB_SECONDS_BUCKETS,
      registers,
    }),
    jobWait: new Histogram({
      name: `${prefix}job_wait_seconds`,
      help: 'Time from enqueue (plus any requested delay) to the first start of a job',
      labelNames: ['queue'] as const,
      buckets: JOB_SECONDS_BUCKETS,
      registers,
    }),
    jobsStalled: new Counter({
      name: `${prefix}jobs_stalled_total`,
      help: 'Jobs found stalled (worker lost its lock) and moved back to wait',
      labelNames: ['queue'] as const,
      registers,
    }),
    featureFlagRollbacks: new Counter({
      name: `${prefix}feature_flag_rollbacks_total`,
      help: 'Feature flags turned off automatically because a variant failed too many jobs',
      labelNames: ['flag'] as const,
      registers,
    }),
    queueJobs,
    queueOldestWaitingAge,
    jobsDeferred: new Counter({
      name: `${prefix}jobs_deferred_total`,
      help: `Jobs put back to delayed without spending an attempt, by reason (${DEFERRAL_REASONS.join('|')}) and dependency`,
      labelNames: ['queue', 'reason', 'dependency'] as const,
      registers,
    }),
    wsaaTickets: new Counter({
      name: `${prefix}afip_wsaa_tickets_total`,
      help: `WSAA tickets asked for, by how they were served (${WSAA_TICKET_RESULTS.join('|')})`,
      labelNames: ['result'] as const,
      registers,
    }),
    queueCollectErrors: new Counter({
      name: `${prefix}queue_metrics_collect_errors_total`,
      help: 'Scrapes that could not read the job counts of a queue',
      labelNames: ['queue'] as const,
      registers,
      collect: () => queueJobsCollecting,
    }),
    postgresStatements: new Counter({
      name: `${prefix}postgres_statements_total`,
      help: 'SQL statements this process sent to Postgres',
      registers,
    }),
    httpRequests: new Counter({
      name: `${prefix}http_requests_total`,
      help: 'HTTP requests by method, route template and status code',
      labelNames: ['method', 'route', 'status_code'] as const,
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: `${prefix}http_request_duration_seconds`,
      help: 'HTTP request duration by method and route template',
      labelNames: ['method', 'route'] as const,
      buckets: HTTP_SECONDS_BUCKETS,
      registers,
    }),
    lockOperations: new Counter({
      name: `${prefix}lock_operations_total`,
      help: 'Lock operations by operation (acquire|extend|release) and result',
      labelNames: ['operation', 'result'] as const,
      registers,
    }),
    lockConflicts: new Counter({
      name: `${prefix}lock_conflicts_total`,
      help: 'Acquire attempts refused because the lock was held, by lock family (key up to the first colon)',
      labelNames: ['lock'] as const,
      registers,
    }),
    lockExtensions: new Counter({
      name: `${prefix}lock_extensions_total`,
      help: 'Lock extensions by result (extended|lost|error)',
      labelNames: ['result'] as const,
      registers,
    }),
    lockHoldSeconds: new Histogram({
      name: `${prefix}lock_hold_seconds`,
      help: 'Time a lock was held, from acquire to release or loss, by lock family',
      labelNames: ['lock'] as const,
      buckets: LOCK_SECONDS_BUCKETS,
      registers,
    }),
    breakerState: new Gauge({
      name: `${prefix}circuit_breaker_state`,
      help: 'Circuit breaker state per dependency in this process: 0 closed, 1 half-open, 2 open',
      labelNames: ['dependency'] as const,
      registers,
    }),
    breakerTransitions: new Counter({
      name: `${prefix}circuit_breaker_transitions_total`,
      help: 'Circuit breaker transitions per dependency and target state',
      labelNames: ['dependency', 'to'] as const,
      registers,
    }),
    dependencyCallDuration: new Histogram({
      name: `${prefix}dependency_call_duration_seconds`,
      help: 'Calls to external dependencies by operation and result (success|failure|timeout|rejected)',
      labelNames: ['dependency', 'operation', 'result'] as const,
      buckets: HTTP_SECONDS_BUCKETS,
      registers,
    }),
    backupRuns: new Counter({
      name: `${prefix}backup_runs_total`,
      help: 'Backup runs by definition (schedule) and result (succeeded|failed|skipped)',
      labelNames: ['schedule', 'result'] as const,
      registers,
    }),
    backupRestoreChecks: new Counter({
      name: `${prefix}backup_restore_checks_total`,
      help: 'Restore checks of backups, after each run or on their own schedule, by definition and result (passed|failed)',
      labelNames: ['schedule', 'result'] as const,
      registers,
    }),
    backupDuration: new Histogram({
      name: `${prefix}backup_duration_seconds`,
      help: 'Duration of finished backup runs (dump, restore check, retention)',
      labelNames: ['schedule'] as const,
      buckets: BACKUP_SECONDS_BUCKETS,
      registers,
    }),
    backupBytes: new Gauge({
      name: `${prefix}backup_bytes`,
      help: 'Size in bytes of the last successful backup of each definition, as stored',
      labelNames: ['schedule'] as const,
      registers,
    }),
    backupLastSuccess: new Gauge({
      name: `${prefix}backup_last_success_timestamp_seconds`,
      help: 'Unix time of the last successful backup of each definition',
      labelNames: ['schedule'] as const,
      registers,
    }),
    lockAuditWriteFailures: new Counter({
      name: `${prefix}lock_audit_write_failures_total`,
      help: 'Lock audit events dropped for good (reason=dropped) and failed batch writes that are retried (reason=error)',
      labelNames: ['reason'] as const,
      registers,
    }),
    lockAuditBuffered: new Gauge({
      name: `${prefix}lock_audit_buffered_events`,
      help: 'Lock audit events buffered in memory, waiting to be written to Postgres',
      registers,
    }),
    fleetDegradationLevel: new Gauge({
      name: `${prefix}fleet_degradation_level`,
      help: 'Fleet-wide degradation level this process acts on: 0 NORMAL, 1 DEGRADED, 2 LIMITED, 3 MINIMAL, 4 EMERGENCY',
      registers,
    }),
    onQueueJobsCollect(collect) {
      queueJobsCollectors.add(collect);
      return () => queueJobsCollectors.delete(collect);
    },
    watchRedisConnections(instances) {
      redisWatches.add(instances);
      return () => {
        redisWatches.delete(instances);
        for (const redis of instances.keys()) redisUp.remove({ redis });
      };
    },
    watchPostgresPool(stats) {
      poolWatches.add(stats);
      return () => poolWatches.delete(stats);
    },
    watchRedisMemory(instances, watchOptions = {}) {
      redisMemoryWatches.set(instances, watchOptions.timeoutMs ?? 2000);
      return () => {
        redisMemoryWatches.delete(instances);
        for (const redis of instances.keys()) {
          redisMemoryUsed.remove({ redis });
          redisMemoryMax.remove({ redis });
        }
      };
    },
  };
}

/** What `INFO memory` says of a server; a field it leaves out (or that is not a number) is undefined. */
export interface RedisMemoryInfo {
  /** used_memory. */
  usedBytes: number | undefined;
  /** maxmemory: 0 when the server sets no limit. */
  maxBytes: number | undefined;
}

/** Parses `INFO memory` (`name:value` lines); the redis_memory gauges and the degradation level both read it. */
export function parseInfoMemory(text: string): RedisMemoryInfo {
  const fields = new Map<string, number>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    const value = Number(line.slice(colon + 1));
    if (colon > 0 && Number.isFinite(value)) fields.set(line.slice(0, colon), value);
  }
  return { usedBytes: fields.get('used_memory'), maxBytes: fields.get('maxmemory') };
}
