import { buildApi } from '@jobfleet/api';
import { createCalendarClient } from '@jobfleet/calendar';
import { startFakeCalendar } from '@jobfleet/calendar/fake';
import { loadConfigOrExit, type Config } from '@jobfleet/config';
import { ensureDevTenant, openMigratedDatabase } from '@jobfleet/db';
import { createLogger, createMetrics, registerQueueGauges } from '@jobfleet/observability';
import { closeQueues, createQueues, createRedisConnection, onShutdownSignal, waitUntilReady } from '@jobfleet/queue';
import { startWorkers } from '@jobfleet/worker';
import { resolveRedis } from './embedded-redis';

// `npm start`: API, workers and (in sandbox mode) the fake Google Calendar in one process.
const config = loadConfigOrExit();
const logger = createLogger({ level: config.logLevel, serviceName: config.serviceName });
const metrics = createMetrics();

const redis = await resolveRedis({ url: config.redis.url, dataDir: config.database.dataDir, logger });
const database = await openMigratedDatabase(config.database, logger);
if (config.devTenant.enabled) await ensureDevTenant(database.db, config.devTenant);

const fakeCalendar = config.connectors.mode === 'sandbox' ? await startFakeCalendar() : undefined;
const calendarConfig: Config['calendar'] = fakeCalendar
  ? { ...config.calendar, rootUrl: fakeCalendar.rootUrl, auth: { kind: 'access-token', token: 'sandbox-token' } }
  : config.calendar;

const producer = createRedisConnection(redis.url, 'producer', { name: 'api' });
await waitUntilReady(producer, 5000);
const queues = createQueues({ connection: producer, prefix: config.redis.prefix, config });
registerQueueGauges(metrics, Object.values(queues));
const api = await buildApi({ config, database, queues, redis: producer, logger, metrics });
await api.listen({ host: config.api.host, port: config.api.port });

const workerConnection = createRedisConnection(redis.url, 'worker', { name: 'worker' });
const fleet = startWorkers({
  config,
  database,
  connection: workerConnection,
  logger,
  metrics,
  calendar: createCalendarClient(calendarConfig),
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
  `  Calendar     ${fakeCalendar ? `sandbox fake at ${fakeCalendar.rootUrl}` : calendarConfig.rootUrl}`,
  config.devTenant.enabled ? `  Dev API key  ${config.devTenant.apiKey}   (tenant "${config.devTenant.tenantId}")` : '',
  '',
].join('\n');
process.stdout.write(`${banner}\n`);

onShutdownSignal(
  async (signal) => {
    logger.info({ signal }, 'shutting down');
    await api.close();
    const { forced } = await fleet.close();
    if (forced) logger.warn('shutdown timeout reached: active jobs left to stalled-job recovery');
    await closeQueues(queues);
    producer.disconnect();
    workerConnection.disconnect();
    await fakeCalendar?.close();
    await database.close();
    await redis.stop();
  },
  { logger },
);
