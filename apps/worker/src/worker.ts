import { createTicketProvider, type WsaaClient, type WsaaCredentials, type WsfeClient } from '@jobfleet/afip';
import type { CalendarClient } from '@jobfleet/calendar';
import type { Config } from '@jobfleet/config';
import { QUEUES, type QueueName } from '@jobfleet/contracts';
import type { Database } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
import { createBufferedAuditSink, createLockManager } from '@jobfleet/locks';
import { closeWorkersGracefully, createWorker } from '@jobfleet/queue';
import type { Redis } from 'ioredis';
import type { Worker } from 'bullmq';
import { processors } from './processors';

export interface WorkerFleetDeps {
  config: Config;
  database: Database;
  /** A worker-role connection (maxRetriesPerRequest: null); BullMQ duplicates it per worker. */
  connection: Redis;
  logger: Logger;
  metrics: Metrics;
  calendar: CalendarClient;
  afip: {
    wsaa: WsaaClient;
    wsfe: WsfeClient;
    /** The certificate that represents a CUIT before AFIP. */
    credentials: (cuit: number) => WsaaCredentials | Promise<WsaaCredentials>;
  };
}

// A WSAA login is one slow call; others wait for it and then read the shared ticket.
const LOGIN_LOCK = { waitMs: 30_000, ttlMs: 60_000 };

export interface WorkerFleet {
  workers: ReadonlyMap<QueueName, Worker>;
  /** Stops taking jobs, gives active ones `config.worker.shutdownTimeoutMs`, then closes hard. */
  close(): Promise<{ forced: boolean }>;
}

/** Starts one BullMQ worker for each queue in `config.worker.queues`. */
export function startWorkers(deps: WorkerFleetDeps): WorkerFleet {
  const { config, logger, metrics, database, connection } = deps;
  // Process-wide infrastructure the processors share: the fleet lock (audited) and the AFIP ticket.
  const audit = createBufferedAuditSink({ database, metrics, logger });
  const locks = createLockManager({ redis: connection, keyPrefix: `${config.redis.prefix}:lock`, owner: config.worker.id, audit, metrics, logger });
  const tickets = createTicketProvider({
    redis: connection,
    keyPrefix: config.redis.prefix,
    wsaa: deps.afip.wsaa,
    credentials: deps.afip.credentials,
    withLock: (key, fn) => locks.withLock(key, LOGIN_LOCK, () => fn()),
  });
  const processorDeps = {
    database,
    logger,
    calendar: deps.calendar,
    locks,
    afip: { wsfe: deps.afip.wsfe, tickets, lockWaitMs: config.afip.lockWaitMs, lockTtlMs: config.afip.lockTtlMs },
  };
  const workers = new Map<QueueName, Worker>();
  for (const queue of config.worker.queues) {
    const processor = processors[queue](processorDeps);
    const worker = createWorker({
      queue,
      connection: deps.connection,
      prefix: config.redis.prefix,
      settings: config.worker.perQueue[queue],
      attemptTimeoutMs: QUEUES[queue].attemptTimeoutMs,
      processor,
      logger: logger.child({ workerId: config.worker.id }),
      metrics,
    });
    workers.set(queue, worker);
  }
  logger.info({ queues: [...workers.keys()], workerId: config.worker.id }, 'workers started');
  return {
    workers,
    async close() {
      const outcome = await closeWorkersGracefully([...workers.values()], { timeoutMs: config.worker.shutdownTimeoutMs, logger });
      // Lock events of the last jobs are written before the database closes.
      await audit.close();
      return outcome;
    },
  };
}
