import type { ServiceConfig } from '@jobfleet/config';
import { openMigratedDatabase } from '@jobfleet/db';
import { createLogger, createMetrics, withDeadline } from '@jobfleet/observability';
import type { Tracing } from '@jobfleet/observability/tracing';
import { connectRedis, onShutdownSignal } from '@jobfleet/queue';
import { startWorkerHttp } from './http';
import { startWorkers } from './worker';

const DATABASE_CLOSE_TIMEOUT_MS = 5000;

/** A worker container, once tracing has started (see main.ts): serves the queues named in QUEUES (default all). */
export async function runWorkerContainer(config: ServiceConfig, tracing: Tracing | undefined): Promise<void> {
  const logger = createLogger({ level: config.logLevel, serviceName: `${config.serviceName}-worker` });
  const metrics = createMetrics();
  const database = await openMigratedDatabase({ ...config.database, onStatement: () => metrics.postgresStatements.inc() }, logger);
  const redis = connectRedis(config.redis, 'worker', { name: 'worker' });
  metrics.watchRedisConnections(redis.instances);
  metrics.watchRedisMemory(redis.instances);
  metrics.watchPostgresPool(() => database.poolStats());
  const fleet = await startWorkers({
    config,
    database,
    redis,
    logger,
    metrics,
    telemetry: tracing?.queueTelemetry,
  });
  const http =
    config.worker.metricsPort === undefined
      ? undefined
      : await startWorkerHttp({ metrics, database, redis: redis.instances, readyTimeoutMs: config.api.readyTimeoutMs, metricsToken: config.api.metricsToken, guards: fleet.guards, degradation: fleet.degradation }, config.worker.metricsPort);
  if (http) logger.info({ port: http.port }, 'worker metrics and health listening');

  onShutdownSignal(
    async (signal) => {
      logger.info({ signal }, 'shutting down: no new jobs, finishing active ones');
      const { forced } = await fleet.close();
      if (forced) logger.warn('shutdown timeout reached: active jobs left to stalled-job recovery');
      http?.server.close();
      redis.disconnect();
      // A pool with a query stuck on a dead server never ends; the process must exit anyway.
      await withDeadline(database.close(), DATABASE_CLOSE_TIMEOUT_MS, 'closing the database').catch((err: unknown) =>
        logger.warn({ err }, 'database did not close in time; exiting without it'),
      );
      await tracing?.shutdown();
    },
    { logger },
  );
}
