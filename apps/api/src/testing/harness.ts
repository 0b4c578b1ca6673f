import { createServer } from 'node:net';
import { loadConfig, type Config } from '@jobfleet/config';
import { JOB_KINDS, type AnyJobKind, type QueueName } from '@jobfleet/kinds';
import { createApiKey, createTenant, googleConnectionRepository, type ApiKeyScope } from '@jobfleet/db';
import { createLogger, createMetrics, registerQueueGauges, type Logger } from '@jobfleet/observability';
import { closeQueues, connectRedis, createQueues } from '@jobfleet/queue';
import { parseKeyring } from '@jobfleet/secrets';
import type { Queue } from 'bullmq';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { createTestDatabase, type TestDatabase } from '../../../../tests/support/db';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../../../../tests/support/redis';
import { buildApi } from '../app';

export const ADMIN_PASSWORD = 'test-admin-password';

export interface TestApi {
  app: FastifyInstance;
  config: Config;
  testDb: TestDatabase;
  queues: Record<QueueName, Queue>;
  /** Plaintext keys by purpose; tenant "acme" unless the name says otherwise. */
  keys: { writer: string; reader: string; admin: string; operator: string; otherTenant: string; otherAdmin: string; otherOperator: string };
  /** app.inject with the writer key and a JSON body unless overridden. */
  post(body: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  get(url: string, key?: string): Promise<LightMyRequestResponse>;
  /** Jobs in the calendar-sync queue, whatever their state. */
  jobCount(): Promise<number>;
  close(): Promise<void>;
}

/** A TCP port nothing listens on: bound once by us, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

/**
 * The API against this file's own database and queue prefix, with tenants "acme" and "globex".
 * `redisUrl` points the producer elsewhere (a closed port simulates a Redis outage); `logger`
 * replaces the silent one (a capture, to check what the API logs).
 */
export async function startTestApi(options: {
  label: string;
  redisUrl?: string;
  env?: Record<string, string>;
  logger?: Logger;
  /** Job kinds served beside the registry's (a test's own kind). */
  extraKinds?: readonly AnyJobKind[];
  /** How long a kind's admission is reused (buildApi's default otherwise). */
  admissionCacheTtlMs?: number;
}): Promise<TestApi> {
  const kinds: readonly AnyJobKind[] = [...JOB_KINDS, ...(options.extraKinds ?? [])];
  const testDb = await createTestDatabase();
  const prefix = uniquePrefix(options.label);
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: testDb.url,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    ADMIN_PASSWORD,
    API_BODY_LIMIT_BYTES: '16384',
    // Every request of a file comes from inject's 127.0.0.1: refused keys must not add up to a
    // lockout. The limiter's own tests set their limit.
    AUTH_FAILURE_LIMIT: '1000000',
    ...options.env,
  });
  const logger = options.logger ?? createLogger({ level: config.logLevel, serviceName: 'api-test' });
  const metrics = createMetrics();
  const redis = connectRedis({ main: options.redisUrl ?? TEST_REDIS_URL }, 'producer', { name: `test-${options.label}` });
  const queues = createQueues({ names: kinds.map((kind) => kind.name) as QueueName[], connection: redis.forQueue, prefix, config });
  registerQueueGauges(metrics, Object.values(queues));
  const app = await buildApi({ config, database: testDb.database, queues, kinds, redis, logger, metrics, admissionCacheTtlMs: options.admissionCacheTtlMs });
  await app.ready();

  const { db } = testDb.database;
  await createTenant(db, { id: 'acme', name: 'Acme' });
  await createTenant(db, { id: 'globex', name: 'Globex' });
  // Both may write to any calendar through a Google connection of their own.
  const keyring = parseKeyring(config.secrets.keys, config.secrets.activeKeyId);
  for (const tenantId of ['acme', 'globex']) {
    await googleConnectionRepository.add(db, keyring, { tenantId, credential: { kind: 'access-token', token: `token-of-${tenantId}` }, access: { policy: 'credential' } });
  }
  const key = async (tenantId: string, scopes: ApiKeyScope[]) => (await createApiKey(db, { tenantId, name: 'test', scopes })).key;
  const keys = {
    writer: await key('acme', ['jobs:write', 'jobs:read']),
    reader: await key('acme', ['jobs:read']),
    admin: await key('acme', ['admin']),
    operator: await key('acme', ['fleet:admin']),
    otherTenant: await key('globex', ['jobs:write', 'jobs:read']),
    otherAdmin: await key('globex', ['admin']),
    otherOperator: await key('globex', ['fleet:admin']),
  };

  const inject = (request: InjectOptions) => app.inject(request);
  return {
    app,
    config,
    testDb,
    queues,
    keys,
    post: (body, headers = {}) =>
      inject({
        method: 'POST',
        url: '/v1/jobs/calendar-sync',
        headers: { authorization: `Bearer ${keys.writer}`, 'content-type': 'application/json', ...headers },
        payload: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    get: (url, apiKey = keys.writer) => inject({ method: 'GET', url, headers: { authorization: `Bearer ${apiKey}` } }),
    async jobCount() {
      const counts = await queues['calendar-sync'].getJobCounts();
      return Object.values(counts).reduce((sum, n) => sum + n, 0);
    },
    async close() {
      await app.close();
      await closeQueues(queues);
      redis.disconnect();
      if (options.redisUrl === undefined) await deletePrefix(prefix);
      await testDb.drop();
    },
  };
}

/** A valid create request for `reservationId`. */
export function reservation(reservationId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    reservationId,
    action: 'create',
    calendarId: 'restaurant@example.com',
    version: 1,
    summary: `Reservation ${reservationId}`,
    start: { dateTime: '2026-12-01T20:00:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
    end: { dateTime: '2026-12-01T22:00:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
    ...overrides,
  };
}
