import { createTicketProvider } from '@jobfleet/afip';
import { preloadCalendarLibrary } from '@jobfleet/calendar';
import type { Config } from '@jobfleet/config';
import { QUEUES, toStoredError, type QueueName } from '@jobfleet/contracts';
import { backupRepository, classifyPostgresError, postgresRefusal, type Database } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
import { createBufferedAuditSink, createLockManager } from '@jobfleet/locks';
import { closeWorkersGracefully, createWorker, jobOptionsFor, type JobProcessor } from '@jobfleet/queue';
import { createBackupTarget } from '@jobfleet/backup';
import type { Redis } from 'ioredis';
import { Queue, type Worker } from 'bullmq';
import { createDependencyGuards, createFleetFailureCounter, publishBreakerState, type Dependency, type DependencyGuard } from '@jobfleet/resilience';
import { parseKeyring } from '@jobfleet/secrets';
import type { Connectors } from './connectors';
import { seedBackupGauges, syncBackupSchedules } from './backup-schedules';
import { guardBackupTarget, guardCalendar, guardWsaa, guardWsfe } from './guarded-clients';
import { processors } from './processors';
import { recordAttemptDecision, recordUnprocessedFailure } from './sync-tracking';
import { createTenantConnections } from './tenant-connections';

export interface WorkerFleetDeps extends Connectors {
  config: Config;
  database: Database;
  /** A worker-role connection (maxRetriesPerRequest: null); BullMQ duplicates it per worker. */
  connection: Redis;
  logger: Logger;
  metrics: Metrics;
}

// A WSAA login is one slow call; others wait for it and then read the shared ticket.
const LOGIN_LOCK = { waitMs: 30_000, ttlMs: 60_000 };

export interface WorkerFleet {
  workers: ReadonlyMap<QueueName, Worker>;
  /** This process's circuit breakers, one per dependency (its /health/ready reports them). */
  guards: Readonly<Record<Dependency, DependencyGuard>>;
  /** Stops taking jobs, gives active ones `config.worker.shutdownTimeoutMs`, then closes hard. */
  close(): Promise<{ forced: boolean }>;
}

/**
 * A backup attempt is bounded by its own deadlines (dump, then restore check, each
 * BACKUP_TIMEOUT_SECONDS); the worker's bound only catches a run that ignores them.
 */
const BACKUP_ATTEMPT_SLACK_MS = 5 * 60_000;

function attemptTimeoutMs(queue: QueueName, config: Config): number {
  return QUEUES[queue].attemptTimeoutMs ?? 2 * config.backup.timeoutMs + BACKUP_ATTEMPT_SLACK_MS;
}

/**
 * Starts one BullMQ worker for each queue in `config.worker.queues`. A worker serving backups
 * first makes the backup schedulers match its definitions and seeds the backup gauges.
 */
export async function startWorkers(deps: WorkerFleetDeps): Promise<WorkerFleet> {
  const { config, logger, metrics, database, connection } = deps;
  const guards = createDependencyGuards(config.resilience, {
    metrics,
    logger,
    onStateChange: (dependency, state) => publishBreakerState(connection, config.redis.prefix, config.worker.id, dependency, state),
    countFleetFailure: createFleetFailureCounter(connection, config.redis.prefix),
    // Only an unavailable server opens the Postgres breaker; a statement it refuses is a bug of ours.
    isFailure: { postgres: (error) => classifyPostgresError(error) !== 'bug' },
  });
  const wsaa = guardWsaa(deps.afip.wsaa, guards['afip-wsaa']);
  const wsfe = guardWsfe(deps.afip.wsfe, guards['afip-wsfe']);
  const connections = createTenantConnections({
    db: database.db,
    keyring: parseKeyring(config.secrets.keys, config.secrets.activeKeyId),
    createCalendarClient: (credential) => guardCalendar(deps.calendar(credential), guards.calendar),
    postgres: guards.postgres,
    cacheMs: config.connectionCacheMs,
  });
  // Process-wide infrastructure the processors share: the fleet lock (audited) and the AFIP ticket.
  const audit = createBufferedAuditSink({ database, metrics, logger });
  const locks = createLockManager({ redis: connection, keyPrefix: `${config.redis.prefix}:lock`, owner: config.worker.id, audit, metrics, logger });
  const tickets = createTicketProvider({
    redis: connection,
    keyPrefix: config.redis.prefix,
    wsaa,
    credentials: (issuer) => connections.issuerCredentials(issuer),
    withLock: (key, fn) => locks.withLock(key, LOGIN_LOCK, () => fn()),
    refreshMarginSeconds: config.afip.ticketRefreshMarginSeconds,
    lostTicketRecheckMs: config.afip.lostTicketRecheckMs,
  });
  const backupTargets = new Map(
    await Promise.all(
      config.backup.targets.map(async (target) => {
        const created = await createBackupTarget(target, config.backup.s3);
        return [target.name, created.kind === 's3' ? guardBackupTarget(created, guards.s3) : created] as const;
      }),
    ),
  );
  if (config.worker.queues.includes('backup')) await prepareBackups(deps);
  if (config.worker.queues.includes('calendar-sync')) await preloadCalendarLibrary();
  const processorDeps = {
    database,
    logger,
    metrics,
    postgres: guards.postgres,
    backup: { config: config.backup, targets: backupTargets },
    connections,
    locks,
    afip: { wsfe, tickets, lockWaitMs: config.afip.lockWaitMs, lockTtlMs: config.afip.lockTtlMs },
  };
  const workers = new Map<QueueName, Worker>();
  for (const queue of config.worker.queues) {
    const processor = describePostgresRefusals(processors[queue](processorDeps));
    const worker = createWorker({
      queue,
      connection: deps.connection,
      prefix: config.redis.prefix,
      settings: config.worker.perQueue[queue],
      attemptTimeoutMs: attemptTimeoutMs(queue, config),
      processor,
      logger: logger.child({ workerId: config.worker.id }),
      metrics,
      onDecision: (job, decision, error, attempt) => recordAttemptDecision(processorDeps, queue, job, decision, error, attempt),
      // A statement Postgres refuses for what it is (not for being unavailable) fails the same way every time.
      isPermanent: (error) => classifyPostgresError(error) === 'bug',
      onUnprocessedFailure: (job, error) =>
        queue === 'backup'
          ? backupRepository.failRunningOfJob(database.db, job.id ?? '', { ...toStoredError(error), code: 'JOB_STALLED' }).then(() => undefined)
          : recordUnprocessedFailure(database, queue, job, error),
    });
    workers.set(queue, worker);
  }
  logger.info({ queues: [...workers.keys()], workerId: config.worker.id }, 'workers started');
  return {
    workers,
    guards,
    async close() {
      const outcome = await closeWorkersGracefully([...workers.values()], { timeoutMs: config.worker.shutdownTimeoutMs, logger });
      // Lock events of the last jobs are written before the database closes.
      await audit.close();
      for (const target of backupTargets.values()) target.close();
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

async function prepareBackups({ config, connection, database, logger, metrics }: WorkerFleetDeps): Promise<void> {
  const queue = new Queue('backup', { connection, prefix: config.redis.prefix });
  try {
    await syncBackupSchedules(
      queue,
      { definitions: config.backup.definitions, maxConcurrent: config.backup.maxConcurrent, jobOptions: jobOptionsFor('backup', config) },
      logger,
    );
  } finally {
    await queue.close();
  }
  await seedBackupGauges(database, metrics);
}
