import { loadConfigOrExit } from '@jobfleet/config';
import { ensureDevTenant, openMigratedDatabase } from '@jobfleet/db';
import { createLogger, createMetrics, registerQueueGauges } from '@jobfleet/observability';
import { QUEUE_NAMES } from '@jobfleet/kinds';
import { closeQueues, connectRedis, createQueues, onShutdownSignal, waitUntilReady } from '@jobfleet/queue';
import { buildApi } from './app';
import { startRetention } from './retention';

// Entry point of an API replica. Stateless: run as many as the load needs.
const config = loadConfigOrExit({ role: 'service' });
const logger = createLogger({ level: config.logLevel, serviceName: `${config.serviceName}-api` });
const metrics = createMetrics();
const database = await openMigratedDatabase({ ...config.database, onStatement: () => metrics.postgresStatements.inc() }, logger);
if (config.devTenant.enabled) {
  await ensureDevTenant(database.db, config.devTenant);
  logger.warn({ tenantId: config.devTenant.tenantId }, 'development tenant enabled with its well-known API key');
}

const redis = connectRedis(config.redis, 'producer', { name: 'api' });
// Serve even if Redis is down at boot (503s and a failing readiness probe say so), but give it a moment.
await Promise.all(
  [...redis.instances].map(async ([instance, client]) => {
    if (!(await waitUntilReady(client, 5000))) logger.warn({ redis: instance }, 'Redis is not reachable yet; enqueueing answers 503 until it is');
  }),
);
const queues = createQueues({ names: QUEUE_NAMES, connection: redis.forQueue, prefix: config.redis.prefix, config });
registerQueueGauges(metrics, Object.values(queues));
metrics.watchRedisConnections(redis.instances);
const api = await buildApi({ config, database, queues, redis, logger, metrics });
await api.listen({ host: config.api.host, port: config.api.port, backlog: config.api.listenBacklog });
const retention = startRetention({ database, logger, intervalMs: config.idempotency.pruneIntervalMs, jobHistoryDays: config.api.jobHistoryRetentionDays });

onShutdownSignal(
  async (signal) => {
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    // Stops accepting connections and waits for in-flight requests; new ones get 503 meanwhile.
    retention.stop();
    await api.close();
    await closeQueues(queues);
    redis.disconnect();
    await database.close();
  },
  { logger },
);
