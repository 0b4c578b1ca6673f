import { buildApi, startIdempotencyRetention } from '@jobfleet/api';
import { createSandboxCredentials, startAfipSimulator } from '@jobfleet/afip/simulator';
import { startFakeCalendar } from '@jobfleet/calendar/fake';
import { loadConfigOrExit, type Config } from '@jobfleet/config';
import { ensureDevTenant, openMigratedDatabase } from '@jobfleet/db';
import { createLogger, createMetrics, registerQueueGauges } from '@jobfleet/observability';
import { closeQueues, createQueues, createRedisConnection, onShutdownSignal, waitUntilReady } from '@jobfleet/queue';
import { createConnectors, startWorkers } from '@jobfleet/worker';
import { resolveRedis } from './embedded-redis';

// `npm start`: API, workers and (in sandbox mode) the fake Google Calendar in one process.
const config = loadConfigOrExit();
const logger = createLogger({ level: config.logLevel, serviceName: config.serviceName });
const metrics = createMetrics();

const redis = await resolveRedis({ url: config.redis.url, dataDir: config.database.dataDir, logger });
const database = await openMigratedDatabase(config.database, logger);
if (config.devTenant.enabled) await ensureDevTenant(database.db, config.devTenant);

// Sandbox: the fake Google Calendar and the AFIP simulator, in-process, with throwaway certificates.
const sandbox =
  config.connectors.mode === 'sandbox' ? { calendar: await startFakeCalendar(), afip: await startAfipSimulator() } : undefined;
const connectorConfig: Pick<Config, 'calendar' | 'afip'> = sandbox
  ? {
      calendar: { ...config.calendar, rootUrl: sandbox.calendar.rootUrl, auth: { kind: 'access-token', token: 'sandbox-token' } },
      afip: { ...config.afip, wsaaUrl: sandbox.afip.wsaaUrl, wsfeUrl: sandbox.afip.wsfeUrl },
    }
  : config;

const producer = createRedisConnection(redis.url, 'producer', { name: 'api' });
await waitUntilReady(producer, 5000);
const queues = createQueues({ connection: producer, prefix: config.redis.prefix, config });
registerQueueGauges(metrics, Object.values(queues));
const api = await buildApi({ config, database, queues, redis: producer, logger, metrics });
await api.listen({ host: config.api.host, port: config.api.port });
const retention = startIdempotencyRetention({ database, logger, intervalMs: config.idempotency.pruneIntervalMs });

const workerConnection = createRedisConnection(redis.url, 'worker', { name: 'worker' });
const fleet = await startWorkers({
  config,
  database,
  connection: workerConnection,
  logger,
  metrics,
  ...createConnectors(connectorConfig, sandbox ? createSandboxCredentials() : undefined),
});

// The bound port, which differs from the configured one when API_PORT=0.
const address = api.server.address();
const port = typeof address === 'object' && address ? address.port : config.api.port;
const base = `http://${config.api.host === '0.0.0.0' ? '127.0.0.1' : config.api.host}:${port}`;
const banner = [
  '',
  'jobfleet is running (api + workers in one process)',
  `  API          ${base}/v1   (OpenAPI: ${base}/docs)`,
  `  Bull Board   ${base}/admin/queues   (user ${config.api.adminUser})`,
  `  Metrics      ${base}/metrics        Health: ${base}/health/ready`,
  `  Redis        ${redis.url} (${redis.source})`,
  `  Postgres     ${database.dialect === 'pglite' ? `embedded PGlite in ${config.database.dataDir}` : 'DATABASE_URL'}`,
  `  Calendar     ${sandbox ? `sandbox fake at ${sandbox.calendar.rootUrl}` : connectorConfig.calendar.rootUrl}`,
  `  AFIP         ${sandbox ? `sandbox simulator at ${sandbox.afip.wsfeUrl}` : connectorConfig.afip.wsfeUrl}`,
  config.devTenant.enabled ? `  Dev API key  ${config.devTenant.apiKey}   (tenant "${config.devTenant.tenantId}")` : '',
  '',
].join('\n');
process.stdout.write(`${banner}\n`);

onShutdownSignal(
  async (signal) => {
    logger.info({ signal }, 'shutting down');
    retention.stop();
    await api.close();
    const { forced } = await fleet.close();
    if (forced) logger.warn('shutdown timeout reached: active jobs left to stalled-job recovery');
    await closeQueues(queues);
    producer.disconnect();
    workerConnection.disconnect();
    await sandbox?.calendar.close();
    await sandbox?.afip.close();
    await database.close();
    await redis.stop();
  },
  { logger },
);
