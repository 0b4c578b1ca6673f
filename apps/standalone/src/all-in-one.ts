import { buildApi, startRetention } from '@jobfleet/api';
import { startAfipSimulator } from '@jobfleet/afip/simulator';
import { startFakeS3 } from '@jobfleet/backup/fake-s3';
import { startFakeCalendar } from '@jobfleet/calendar/fake';
import type { Config } from '@jobfleet/config';
import { ensureDevTenant, openMigratedDatabase } from '@jobfleet/db';
import { parseKeyring } from '@jobfleet/secrets';
import { createLogger, createMetrics, registerQueueGauges } from '@jobfleet/observability';
import type { Tracing } from '@jobfleet/observability/tracing';
import { QUEUE_NAMES } from '@jobfleet/kinds';
import { closeQueues, connectRedis, createQueues, onShutdownSignal, waitUntilReady } from '@jobfleet/queue';
import { startWorkers } from '@jobfleet/worker';
import { resolveRedis } from './embedded-redis';
import { seedSandboxConnections } from './sandbox-connections';

/**
 * `npm start` once tracing has started (see main.ts): API, workers and (per dependency, in sandbox
 * mode) the fake Google Calendar, the AFIP simulator and a fake S3, in one process.
 */
export async function runAllInOne(loaded: Config, tracing: Tracing | undefined): Promise<void> {
  const logger = createLogger({ level: loaded.logLevel, serviceName: loaded.serviceName });
  const metrics = createMetrics();

  const redis = await resolveRedis({ url: loaded.redis.url, dataDir: loaded.database.dataDir, logger });
  const database = await openMigratedDatabase({ ...loaded.database, onStatement: () => metrics.postgresStatements.inc() }, logger);

  // Sandbox dependencies run in-process; each connector mode is chosen on its own.
  const sandbox = {
    calendar: loaded.connectors.calendar === 'sandbox' ? await startFakeCalendar() : undefined,
    afip: loaded.connectors.afip === 'sandbox' ? await startAfipSimulator() : undefined,
    s3: loaded.connectors.s3 === 'sandbox' && loaded.backup.targets.some((t) => t.type === 's3') ? await startFakeS3({ buckets: s3Buckets(loaded) }) : undefined,
  };
  const config: Config = {
    ...loaded,
    calendar: sandbox.calendar ? { ...loaded.calendar, rootUrl: sandbox.calendar.rootUrl, tokenUrl: sandbox.calendar.tokenUrl } : loaded.calendar,
    afip: sandbox.afip ? { ...loaded.afip, wsaaUrl: sandbox.afip.wsaaUrl, wsfeUrl: sandbox.afip.wsfeUrl } : loaded.afip,
    backup: sandbox.s3 ? sandboxS3Backups(loaded.backup, sandbox.s3) : loaded.backup,
  };
  const keyring = parseKeyring(config.secrets.keys, config.secrets.activeKeyId);
  if (config.devTenant.enabled) {
    await ensureDevTenant(database.db, config.devTenant);
    // The dev tenant acts through connections of its own, as every tenant does: the simulator's CUIT and the fake Calendar.
    await seedSandboxConnections(database.db, keyring, {
      tenantId: config.devTenant.tenantId,
      afip: sandbox.afip !== undefined,
      calendar: sandbox.calendar !== undefined,
    });
  }

  // The Redis found or started above, and the instances of REDIS_QUEUE_URLS (which needs REDIS_URL).
  const topology = { main: redis.url, queueInstances: config.redis.queueInstances };
  const producer = connectRedis(topology, 'producer', { name: 'api' });
  await Promise.all([...producer.instances.values()].map((client) => waitUntilReady(client, 5000)));
  const queues = createQueues({ names: QUEUE_NAMES, connection: producer.forQueue, prefix: config.redis.prefix, config, telemetry: tracing?.queueTelemetry });
  registerQueueGauges(metrics, Object.values(queues));
  metrics.watchRedisConnections(producer.instances);
  metrics.watchRedisMemory(producer.instances);
  metrics.watchPostgresPool(() => database.poolStats());
  // One degradation level, one fleet-controls cache and one set of queues for both parts: the
  // workers own the first two (they count as workers; fleet.close stops them), the API borrows them.
  const workerRedis = connectRedis(topology, 'worker', { name: 'worker' });
  const fleet = await startWorkers({
    config,
    database,
    redis: workerRedis,
    logger,
    metrics,
    telemetry: tracing?.queueTelemetry,
    queues,
  });
  const api = await buildApi({ config, database, queues, redis: producer, logger, metrics, shared: { degradation: fleet.degradation, controls: fleet.controls } });
  await api.listen({ host: config.api.host, port: config.api.port, backlog: config.api.listenBacklog });
  const retention = startRetention({ database, logger, keyring, policy: config.retention });

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
    `  Calendar     ${sandbox.calendar ? `sandbox fake at ${sandbox.calendar.rootUrl}` : config.calendar.rootUrl}`,
    `  AFIP         ${sandbox.afip ? `sandbox simulator at ${sandbox.afip.wsfeUrl}` : config.afip.wsfeUrl}`,
    sandbox.s3 ? `  S3           sandbox fake at ${sandbox.s3.url}` : '',
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
      workerRedis.disconnect();
      await sandbox.calendar?.close();
      await sandbox.afip?.close();
      await sandbox.s3?.close();
      await database.close();
      await redis.stop();
      await tracing?.shutdown();
    },
    { logger },
  );
}

function s3Buckets(source: Config): string[] {
  return [...new Set(source.backup.targets.flatMap((target) => (target.type === 's3' ? [target.bucket] : [])))];
}

/** Points every S3 backup target at the in-process fake, with the fake's credentials. */
function sandboxS3Backups(backup: Config['backup'], fake: { url: string; accessKeyId: string; secretAccessKey: string }): Config['backup'] {
  const retarget = <T extends Config['backup']['targets'][number]>(target: T): T =>
    target.type === 's3' ? { ...target, endpoint: fake.url, forcePathStyle: true } : target;
  return {
    ...backup,
    targets: backup.targets.map(retarget),
    definitions: backup.definitions.map((definition) => ({ ...definition, target: retarget(definition.target) })),
    s3: { ...backup.s3, accessKeyId: fake.accessKeyId, secretAccessKey: fake.secretAccessKey },
  };
}
