import type { CalendarClient } from '@jobfleet/calendar';
import type { Config } from '@jobfleet/config';
import { QUEUES, type QueueName } from '@jobfleet/contracts';
import type { Database } from '@jobfleet/db';
import type { Logger, Metrics } from '@jobfleet/observability';
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
}

export interface WorkerFleet {
  workers: ReadonlyMap<QueueName, Worker>;
  /** Stops taking jobs, gives active ones `config.worker.shutdownTimeoutMs`, then closes hard. */
  close(): Promise<{ forced: boolean }>;
}

/** Starts one BullMQ worker for each queue in `config.worker.queues`. */
export function startWorkers(deps: WorkerFleetDeps): WorkerFleet {
  const { config, logger } = deps;
  const workers = new Map<QueueName, Worker>();
  for (const queue of config.worker.queues) {
    const processor = processors[queue](deps);
    const worker = createWorker({
      queue,
      connection: deps.connection,
      prefix: config.redis.prefix,
      settings: config.worker.perQueue[queue],
      attemptTimeoutMs: QUEUES[queue].attemptTimeoutMs,
      processor,
      logger: logger.child({ workerId: config.worker.id }),
      metrics: deps.metrics,
    });
    workers.set(queue, worker);
  }
  logger.info({ queues: [...workers.keys()], workerId: config.worker.id }, 'workers started');
  return {
    workers,
    close: () => closeWorkersGracefully([...workers.values()], { timeoutMs: config.worker.shutdownTimeoutMs, logger }),
  };
}
