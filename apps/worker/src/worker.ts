import type { Config } from '@jobfleet/config';
import { DependencyUnreachableError } from '@jobfleet/contracts';
import { adminAuditRepository, classifyPostgresError, createTenantLimitsCache, isUnreachablePostgresQuery, postgresRefusal, type Database } from '@jobfleet/db';
import { JOB_KINDS, QUEUE_NAMES, attemptHistory, recordAttemptDecision, recordUnprocessedFailure, type AnyJobKind, type KindRuntime } from '@jobfleet/kinds';
import { createBufferedAuditSink, createLockManager, type LockManager } from '@jobfleet/locks';
import type { Logger, Metrics } from '@jobfleet/observability';
import {
  closeQueues,
  closeWorkersGracefully,
  createQueues,
  createSubscriberConnection,
  createTenantCapacity,
  createWorker,
  pausableGate,
  settingsFor,
  tenantAttemptGate,
  type JobProcessor,
  type RedisConnections,
} from '@jobfleet/queue';
import {
  createDependencyGuards,
  createFleetFailureCounter,
  mayTakeJobs,
  publishBreakerState,
  startDegradation,
  type DegradationView,
  type Dependency,
  type DependencyGuard,
} from '@jobfleet/resilience';
import type { FleetControls } from '@jobfleet/controls';
import { parseKeyring } from '@jobfleet/secrets';
import type { Queue, Telemetry, Worker } from 'bullmq';
import { startFleetControls } from './fleet-controls';

export interface WorkerFleetDeps {
  config: Config;
  database: Database;
  /**
   * Worker-role connections (maxRetriesPerRequest: null): each queue's worker runs on its queue's
   * Redis (BullMQ duplicates the connection per worker); locks and the breaker view use `main`.
   */
  redis: RedisConnections;
  logger: Logger;
  metrics: Metrics;
  /** The job kinds this build knows; default the registry. `config.worker.queues` picks among them. */
  kinds?: readonly AnyJobKind[];
  /** Tracing's BullMQ telemetry: each run of a job is a span in the trace that enqueued it. Default: none. */
  telemetry?: Telemetry | undefined;
  /**
   * Every queue of the fleet, which the degradation level reads: borrowed from a process that has
   * them already (the standalone start's API), not closed with the fleet. Default: opened on
   * `redis` and closed with the fleet.
   */
  queues?: Readonly<Record<string, Queue>>;
}

export interface WorkerFleet {
  workers: ReadonlyMap<string, Worker>;
  /** This process's circuit breakers, one per dependency (its /health/ready reports them). */
  guards: Readonly<Record<Dependency, DependencyGuard>>;
  /** The fleet's degradation level as this process acts on it (applyDegradation). */
  degradation: DegradationView;
  /** The kill switches and flags as this process acts on them; stopped by `close`. */
  controls: FleetControls;
  /** Stops taking jobs, gives active ones `config.worker.shutdownTimeoutMs`, then closes hard. */
  close(): Promise<{ forced: boolean }>;
}

// A running slot outlives its attempt's timeout by this much, then frees itself (a crashed worker's).
const RUNNING_SLOT_MARGIN_MS = 5000;
// How long a job whose own query found Postgres unreachable waits before it runs again (no attempt spent).
const POSTGRES_UNREACHABLE_WAIT_MS = 2000;

/** The kinds named by QUEUES (every known kind when it is unset); an unknown name stops the boot. */
function servedKinds(config: Config, kinds: readonly AnyJobKind[]): AnyJobKind[] {
  const { queues } = config.worker;
  if (queues === 'all') return [...kinds];
  const unknown = queues.filter((name) => !kinds.some((kind) => kind.name === name));
  if (unknown.length > 0) throw new Error(`QUEUES names job kinds this build does not have: ${unknown.join(', ')}`);
  return kinds.filter((kind) => queues.includes(kind.name));
}

/**
 * Starts one BullMQ worker for each served job kind. Each kind's worker half is loaded and
 * started first (its connections, schedulers, gauges), only in the processes that serve it.
 */
export async function startWorkers(deps: WorkerFleetDeps): Promise<WorkerFleet> {
  const { config, logger, metrics, database, redis } = deps;
  const connection = redis.main;
  const kinds = servedKinds(config, deps.kinds ?? JOB_KINDS);
  const guards = createDependencyGuards(config.resilience, {
    metrics,
    logger,
    onStateChange: (dependency, state) => publishBreakerState(connection, config.redis.prefix, config.worker.id, dependency, state),
    countFleetFailure: createFleetFailureCounter(connection, config.redis.prefix),
    // Only an unavailable server opens the Postgres breaker; a statement it refuses is a bug of ours.
    isFailure: { postgres: (error) => classifyPostgresError(error) !== 'bug' },
  });
  // The fleet lock (audited), shared by the kinds that need one.
  const audit = createBufferedAuditSink({ database, metrics, logger });
  let lockManager: LockManager | undefined;
  const locks = () => (lockManager ??= createLockManager({ redis: connection, keyPrefix: `${config.redis.prefix}:lock`, owner: config.worker.id, audit, metrics, logger }));
  // Every queue of the fleet, not only the served ones: this process may be the level's evaluator.
  const signalQueues = deps.queues ?? createQueues({ names: QUEUE_NAMES, connection: redis.forQueue, prefix: config.redis.prefix, config, logger });
  const degradation = startDegradation({
    config: config.degradation,
    prefix: config.redis.prefix,
    id: `worker:${config.worker.id}`,
    sources: { main: connection, instances: redis.instances, queues: Object.values(signalQueues), pingPostgres: (timeoutMs) => database.ping(timeoutMs) },
    audit: (entries) => adminAuditRepository.append(database.db, entries),
    logger,
    metrics,
    timeoutMs: config.api.readyTimeoutMs,
    countsAsWorker: true,
  });
  const fleetControls = await startFleetControls({
    config,
    database,
    redis: redis.main,
    subscriber: createSubscriberConnection(redis.main, `${config.worker.id}:controls`),
    logger,
    metrics,
    // The level holds fetching back too (mayTakeJobs); the kill switches' pause applies both.
    heldBackBy: () => {
      const { level, raised } = degradation.current();
      return mayTakeJobs(level, raised) ? undefined : `degradation level ${level}`;
    },
  });
  degradation.onChange(() => fleetControls.reapply());
  const { controls } = fleetControls;
  const keyring = parseKeyring(config.secrets.keys, config.secrets.activeKeyId);
  const context = { config, database, redis, logger, metrics, guards, keyring, locks, flags: fleetControls.flags };

  const runtimes = new Map<string, KindRuntime>();
  for (const kind of kinds) runtimes.set(kind.name, await (await kind.worker()).start(context));
  const statusDeps = { database, postgres: guards.postgres };
  const capacity = createTenantCapacity(redis.forQueue, config.redis.prefix);
  const limits = createTenantLimitsCache(database.db, config.tenants);
  const workers = new Map<string, Worker>();
  for (const kind of kinds) {
    const runtime = runtimes.get(kind.name);
    if (runtime === undefined) continue;
    const worker = createWorker({
      queue: kind.name,
      connection: redis.forQueue(kind.name),
      prefix: config.redis.prefix,
      settings: settingsFor(kind.name, config),
      attemptTimeoutMs: kind.attemptTimeoutMs(config),
      processor: describePostgresRefusals(runtime.processor),
      logger: logger.child({ workerId: config.worker.id }),
      metrics,
      onDecision: (job, decision, error, attempt) =>
        runtime.onDecision ? runtime.onDecision(job, decision, error, attempt) : recordAttemptDecision(statusDeps, kind, job, decision, error, attempt),
      // A statement Postgres refuses for what it is (not for being unavailable) fails the same way every time.
      isPermanent: (error) => classifyPostgresError(error) === 'bug',
      // A query that could not reach Postgres (a kind's own, unguarded: the backup's rows) waits,
      // as the breaker-guarded status writes do, instead of spending the attempts of an outage.
      asWait: (error) => (isUnreachablePostgresQuery(error) ? new DependencyUnreachableError('postgres', POSTGRES_UNREACHABLE_WAIT_MS, { cause: error }) : undefined),
      onUnprocessedFailure: (job, error) =>
        runtime.onUnprocessedFailure ? runtime.onUnprocessedFailure(job, error) : recordUnprocessedFailure(database, kind, job, error),
      telemetry: deps.telemetry,
      // A paused tenant's jobs wait before they take a running slot.
      gate: pausableGate(
        (tenantId) => controls.current().processingPaused(kind.name, tenantId) !== undefined,
        tenantAttemptGate({
          kind: kind.name,
          capacity,
          maxRunningJobs: async (tenantId) => (await limits.limitsOf(tenantId)).quotas(kind.name).maxRunningJobs,
          leaseMs: kind.attemptTimeoutMs(config) + RUNNING_SLOT_MARGIN_MS,
        }),
      ),
      history: attemptHistory(statusDeps, kind, config.worker.id),
    });
    fleetControls.watch(worker);
    workers.set(kind.name, worker);
  }
  logger.info({ queues: [...workers.keys()], workerId: config.worker.id }, 'workers started');
  return {
    workers,
    guards,
    degradation,
    controls,
    async close() {
      await degradation.stop();
      if (deps.queues === undefined) await closeQueues(signalQueues);
      const outcome = await closeWorkersGracefully([...workers.values()], { timeoutMs: config.worker.shutdownTimeoutMs, logger });
      await fleetControls.close();
      // Lock events of the last jobs are written before the database closes.
      await audit.close();
      for (const runtime of runtimes.values()) await runtime.close?.();
      return outcome;
    },
  };
}

/**
 * A refused statement fails as POSTGRES_REFUSED with the server's reason and SQLSTATE: BullMQ's
 * failedReason and sync_status.last_error would otherwise hold only drizzle's SQL text and parameters.
 */
function describePostgresRefusals<T, R>(processor: JobProcessor<T, R>): JobProcessor<T, R> {
  return async (job, context) => {
    try {
      return await processor(job, context);
    } catch (error) {
      throw postgresRefusal(error) ?? error;
    }
  };
}
