import { buildApi } from '@jobfleet/api';
import { createTestCertificate, startAfipSimulator, type AfipSimulator, type AfipSimulatorOptions } from '@jobfleet/afip/simulator';
import { startFakeCalendar, type FakeCalendar } from '@jobfleet/calendar/fake';
import { loadConfig, type Config } from '@jobfleet/config';
import { JOB_KINDS, type AnyJobKind, type QueueName } from '@jobfleet/kinds';
import { afipIssuerRepository, createApiKey, createTenant, googleConnectionRepository, type ApiKeyScope, type CalendarAccess, type Db } from '@jobfleet/db';
import { createLogger, createMetrics, registerQueueGauges, type Metrics } from '@jobfleet/observability';
import { closeQueues, createQueues, waitUntilReady } from '@jobfleet/queue';
import { parseKeyring } from '@jobfleet/secrets';
import { startWorkers, type WorkerFleet } from '@jobfleet/worker';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { createTestDatabase, type TestDatabase } from './db';
import { connectTestRedis, deletePrefix, TEST_REDIS_URL, uniquePrefix } from './redis';

export interface TestSystem {
  config: Config;
  testDb: TestDatabase;
  calendar: FakeCalendar;
  afip: AfipSimulator;
  api: FastifyInstance;
  /** The in-process API's and workers' metrics. */
  metrics: Metrics;
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

/** The key that encrypts connection secrets in tests (32 bytes, base64). */
export const TEST_SECRETS_KEYS = `test:${Buffer.alloc(32, 7).toString('base64')}`;

/**
 * Gives a tenant its own connections: AFIP issuers for `cuits` (throwaway certificates the
 * simulator accepts) and a Google connection with a bearer token of its own, writing to any
 * calendar unless `calendars` says which.
 */
export async function seedTenantConnections(
  db: Db,
  tenantId: string,
  options: { cuits?: readonly number[]; calendar?: CalendarAccess | false; secretsKeys?: string } = {},
): Promise<void> {
  const keyring = parseKeyring(options.secretsKeys ?? TEST_SECRETS_KEYS);
  for (const cuit of options.cuits ?? [TEST_CUIT]) {
    await afipIssuerRepository.add(db, keyring, { tenantId, cuit, ...createTestCertificate({ cuit }) });
  }
  if (options.calendar !== false) {
    await googleConnectionRepository.add(db, keyring, {
      tenantId,
      credential: { kind: 'access-token', token: `token-of-${tenantId}` },
      access: options.calendar ?? { policy: 'credential' },
    });
  }
}

/**
 * Tenants with a Google connection each (no AFIP issuer) and an API key of `scopes` each, named
 * `keyName`; the keys by tenant.
 */
export async function seedTenantsWithKeys(db: Db, tenantIds: readonly string[], keyName: string, scopes: ApiKeyScope[] = ['jobs:write', 'jobs:read']): Promise<Record<string, string>> {
  const keys: Record<string, string> = {};
  for (const tenantId of tenantIds) {
    await createTenant(db, { id: tenantId, name: tenantId });
    await seedTenantConnections(db, tenantId, { cuits: [] });
    keys[tenantId] = (await createApiKey(db, { tenantId, name: keyName, scopes })).key;
  }
  return keys;
}

/** Worker fleets a test starts beside its system, each on connections of its own as a worker process has. */
export interface WorkerFleets {
  readonly fleets: readonly WorkerFleet[];
  /** Each fleet's metrics registry, in start order. */
  readonly metrics: readonly Metrics[];
  start(kinds: readonly AnyJobKind[]): Promise<WorkerFleet>;
  close(): Promise<void>;
}

export function workerFleets(system: Pick<TestSystem, 'config' | 'testDb'>, label: string): WorkerFleets {
  const fleets: WorkerFleet[] = [];
  const metrics: Metrics[] = [];
  const connections: ReturnType<typeof connectTestRedis>[] = [];
  const logger = createLogger({ level: 'silent', serviceName: label });
  return {
    fleets,
    metrics,
    async start(kinds) {
      const connection = connectTestRedis(system.config, 'worker', `${label}-${connections.length}`);
      connections.push(connection);
      const registry = createMetrics();
      const fleet = await startWorkers({ config: system.config, database: system.testDb.database, redis: connection, logger, metrics: registry, kinds });
      fleets.push(fleet);
      metrics.push(registry);
      return fleet;
    },
    async close() {
      for (const fleet of fleets) await fleet.close();
      for (const connection of connections) connection.disconnect();
    },
  };
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
  /** Extra job kinds served beside the registry's (a test's own kind). */
  extraKinds?: readonly AnyJobKind[];
}): Promise<TestSystem> {
  const kinds: readonly AnyJobKind[] = [...JOB_KINDS, ...(options.extraKinds ?? [])];
  const testDb = await createTestDatabase();
  const calendar = await startFakeCalendar();
  const afip = await startAfipSimulator(options.afip);
  const prefix = uniquePrefix(options.label);
  const childEnv = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    DATABASE_URL: testDb.url,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    CONNECTORS_MODE: 'live',
    GOOGLE_CALENDAR_ROOT_URL: calendar.rootUrl,
    GOOGLE_TOKEN_URL: calendar.tokenUrl,
    AFIP_WSAA_URL: afip.wsaaUrl,
    AFIP_WSFE_URL: afip.wsfeUrl,
    SECRETS_KEYS: TEST_SECRETS_KEYS,
    WORKER_METRICS_PORT: 'off',
    JOBS_BACKOFF_DELAY_MS: '50',
    // The degradation level steps down seconds after a test's fault ends (a killed worker, a
    // Postgres outage), so what it sheds meanwhile does not outlast the scenario by half a minute.
    DEGRADATION_HOLD_SECONDS: '2',
    ...options.env,
  };
  const config = loadConfig({ ...childEnv, LOG_LEVEL: 'silent' });
  const logger = createLogger({ level: config.logLevel, serviceName: 'test' });
  const metrics = createMetrics();
  const producer = connectTestRedis(config, 'producer', 'test-api');
  // As an API replica does at boot: a producer refuses commands until ready (a cluster takes longer).
  await Promise.all([...producer.instances.values()].map((client) => waitUntilReady(client, 5000)));
  const queues = createQueues({ names: kinds.map((kind) => kind.name) as QueueName[], connection: producer.forQueue, prefix, config });
  registerQueueGauges(metrics, Object.values(queues));
  metrics.watchRedisConnections(producer.instances);
  const api = await buildApi({ config, database: testDb.database, queues, kinds, redis: producer, logger, metrics });
  await api.ready();

  const workerConnection = options.workers === false ? undefined : connectTestRedis(config, 'worker', 'test-worker');
  const fleet = workerConnection
    ? await startWorkers({
        config,
        database: testDb.database,
        redis: workerConnection,
        logger,
        metrics,
        kinds,
      })
    : undefined;

  const tenantId = `tenant-${options.label}`;
  await createTenant(testDb.database.db, { id: tenantId, name: options.label });
  await seedTenantConnections(testDb.database.db, tenantId);
  const { key: apiKey } = await createApiKey(testDb.database.db, { tenantId, name: 'test', scopes: ['jobs:write', 'jobs:read'] });

  return {
    config,
    testDb,
    calendar,
    afip,
    api,
    metrics,
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
      await Promise.all([TEST_REDIS_URL, ...config.redis.queueInstances.map(({ target }) => target)].map((target) => deletePrefix(prefix, target)));
      await testDb.drop();
    },
  };
}
