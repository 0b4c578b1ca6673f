import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApi } from '@jobfleet/api';
import { createTestCertificate, startAfipSimulator, type AfipSimulator, type AfipSimulatorOptions } from '@jobfleet/afip/simulator';
import { startFakeCalendar, type FakeCalendar } from '@jobfleet/calendar/fake';
import { loadConfig, type Config } from '@jobfleet/config';
import type { QueueName } from '@jobfleet/contracts';
import { createApiKey, createTenant } from '@jobfleet/db';
import { createLogger, createMetrics, registerQueueGauges } from '@jobfleet/observability';
import { closeQueues, createQueues, createRedisConnection } from '@jobfleet/queue';
import { createConnectors, startWorkers, type WorkerFleet } from '@jobfleet/worker';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { createTestDatabase, type TestDatabase } from './db';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from './redis';

export interface TestSystem {
  config: Config;
  testDb: TestDatabase;
  calendar: FakeCalendar;
  afip: AfipSimulator;
  api: FastifyInstance;
  queues: Record<QueueName, Queue>;
  fleet: WorkerFleet | undefined;
  tenantId: string;
  /** A jobs:write + jobs:read key of `tenantId`. */
  apiKey: string;
  /** The environment a child worker process needs to join this system. */
  childEnv: Record<string, string>;
  close(): Promise<void>;
}

/** The seller CUIT of the invoice fixtures. */
export const TEST_CUIT = 30712345671;

/** A credentials directory (`<cuit>.crt`, `<cuit>.key`) with a throwaway certificate for TEST_CUIT. */
function writeTestCredentials(): string {
  const dir = mkdtempSync(join(tmpdir(), 'jobfleet-afip-'));
  const { certificatePem, privateKeyPem } = createTestCertificate({ cuit: TEST_CUIT });
  writeFileSync(join(dir, `${TEST_CUIT}.crt`), certificatePem);
  writeFileSync(join(dir, `${TEST_CUIT}.key`), privateKeyPem);
  return dir;
}

/**
 * The whole fleet in this process against the machine's real Redis and Postgres, its own
 * database and queue prefix, and a fake Google Calendar on a random port.
 */
export async function startTestSystem(options: {
  label: string;
  workers?: boolean;
  env?: Record<string, string>;
  afip?: AfipSimulatorOptions;
}): Promise<TestSystem> {
  const testDb = await createTestDatabase();
  const calendar = await startFakeCalendar();
  const afip = await startAfipSimulator(options.afip);
  const credentialsDir = writeTestCredentials();
  const prefix = uniquePrefix(options.label);
  const childEnv = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    DATABASE_URL: testDb.url,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    CONNECTORS_MODE: 'live',
    GOOGLE_CALENDAR_ROOT_URL: calendar.rootUrl,
    GOOGLE_ACCESS_TOKEN: 'test-token',
    AFIP_WSAA_URL: afip.wsaaUrl,
    AFIP_WSFE_URL: afip.wsfeUrl,
    AFIP_CREDENTIALS_DIR: credentialsDir,
    WORKER_METRICS_PORT: 'off',
    JOBS_BACKOFF_DELAY_MS: '50',
    ...options.env,
  };
  const config = loadConfig({ ...childEnv, LOG_LEVEL: 'silent' });
  const logger = createLogger({ level: config.logLevel, serviceName: 'test' });
  const metrics = createMetrics();
  const producer = createRedisConnection(TEST_REDIS_URL, 'producer', { name: 'test-api' });
  const queues = createQueues({ connection: producer, prefix, config });
  registerQueueGauges(metrics, Object.values(queues));
  const api = await buildApi({ config, database: testDb.database, queues, redis: producer, logger, metrics });
  await api.ready();

  const workerConnection = options.workers === false ? undefined : createRedisConnection(TEST_REDIS_URL, 'worker', { name: 'test-worker' });
  const fleet = workerConnection
    ? await startWorkers({
        config,
        database: testDb.database,
        connection: workerConnection,
        logger,
        metrics,
        ...createConnectors(config),
      })
    : undefined;

  const tenantId = `tenant-${options.label}`;
  await createTenant(testDb.database.db, { id: tenantId, name: options.label });
  const { key: apiKey } = await createApiKey(testDb.database.db, { tenantId, name: 'test', scopes: ['jobs:write', 'jobs:read'] });

  return {
    config,
    testDb,
    calendar,
    afip,
    api,
    queues,
    fleet,
    tenantId,
    apiKey,
    childEnv,
    async close() {
      await fleet?.close();
      await api.close();
      await closeQueues(queues);
      workerConnection?.disconnect();
      producer.disconnect();
      await calendar.close();
      await afip.close();
      rmSync(credentialsDir, { recursive: true, force: true });
      await deletePrefix(prefix);
      await testDb.drop();
    },
  };
}
