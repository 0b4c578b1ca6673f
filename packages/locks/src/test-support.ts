// Helpers for this package's tests only (not exported).
import { once } from 'node:events';
import { asc, eq } from 'drizzle-orm';
import { schema, type Db } from '@jobfleet/db';
import { createMetrics, type Metrics } from '@jobfleet/observability';
import { captureLogs, type CapturedLogs } from '@jobfleet/observability/testing';
import { createRedisConnection, type RedisClient } from '@jobfleet/queue';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../../../tests/support/redis';
import { createBufferedAuditSink, type BufferedAuditSink, type BufferedAuditSinkOptions } from './audit-sink';
import { createLockManager, type LockManager } from './lock';

export interface LockTestBed {
  testDb: TestDatabase;
  prefix: string;
  metrics: Metrics;
  logs: CapturedLogs;
  sink: BufferedAuditSink;
  /** One Redis connection per simulated worker. */
  connections: RedisClient[];
  /** `managers[i]` is worker `worker-i` on `connections[i]`. */
  managers: LockManager[];
  close(): Promise<void>;
}

/** Its own database, Redis prefix, metrics and audit sink, and `workers` lock managers. */
export async function createLockTestBed(
  label: string,
  options: { workers?: number; sink?: Partial<BufferedAuditSinkOptions> } = {},
): Promise<LockTestBed> {
  const testDb = await createTestDatabase();
  const prefix = uniquePrefix(label);
  const metrics = createMetrics();
  const logs = captureLogs('warn');
  const sink = createBufferedAuditSink({ database: testDb.database, metrics, logger: logs.logger, flushIntervalMs: 20, ...options.sink });
  const connections = await Promise.all(
    Array.from({ length: options.workers ?? 2 }, async (_, i) => {
      const redis = createRedisConnection(TEST_REDIS_URL, 'producer', { name: `jftest-locks-${i}` });
      await once(redis, 'ready');
      return redis;
    }),
  );
  const managers = connections.map((redis, i) =>
    createLockManager({ redis, keyPrefix: prefix, owner: `worker-${i}`, audit: sink, metrics, logger: logs.logger }),
  );
  return {
    testDb,
    prefix,
    metrics,
    logs,
    sink,
    connections,
    managers,
    async close() {
      await sink.close({ timeoutMs: 2000 });
      for (const redis of connections) redis.disconnect();
      await deletePrefix(prefix);
      await testDb.drop();
    },
  };
}

export function auditRows(db: Db, chain: string) {
  return db.select().from(schema.lockAudit).where(eq(schema.lockAudit.chain, chain)).orderBy(asc(schema.lockAudit.seq));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
