/**
 * Throughput of the calendar-sync path against raw BullMQ, measured in the same run on the same
 * Redis: `npm run bench [-- jobs=2000 concurrency=50]`. Prints jobs/s for both and their ratio.
 *
 * raw      Queue.add + a no-op Worker.
 * jobfleet idempotency row (begin/complete) + enqueue + sync_status on the producer side; the
 *          calendar-sync processor calling the fake Google Calendar over HTTP + status writes.
 */
import { randomBytes } from 'node:crypto';
import { startFakeCalendar } from '@jobfleet/calendar/fake';
import { loadConfig } from '@jobfleet/config';
import {
  beginIdempotentRequest,
  completeIdempotentRequest,
  createTenant,
  googleConnectionRepository,
  openDatabase,
  syncStatusRepository,
} from '@jobfleet/db';
import { createLogger, createMetrics } from '@jobfleet/observability';
import { QUEUE_NAMES } from '@jobfleet/kinds';
import { closeQueues, createQueues, createRedisConnection, enqueue, jobIdFor, waitUntilReady } from '@jobfleet/queue';
import { parseKeyring } from '@jobfleet/secrets';
import { startWorkers } from '@jobfleet/worker';
import { Queue, Worker } from 'bullmq';
import pg from 'pg';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.split('=') as [string, string]));
const JOBS = Number(args.jobs ?? 2000);
const CONCURRENCY = Number(args.concurrency ?? 50);
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379';
const ADMIN_DB = args.db ?? 'postgres://postgres@127.0.0.1:5432/postgres';
// Producers send in parallel like API replicas would; bounded so the run stays on loopback and short.
const PRODUCER_PARALLELISM = 50;

async function inParallel(count: number, parallelism: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallelism }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

function waitUntil(done: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (done()) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
}

async function rawBullmq(prefix: string): Promise<number> {
  const connection = createRedisConnection(REDIS_URL, 'worker');
  const queue = new Queue('raw', { connection, prefix });
  let completed = 0;
  const worker = new Worker('raw', async () => undefined, { connection, prefix, concurrency: CONCURRENCY });
  worker.on('completed', () => completed++);
  await worker.waitUntilReady();
  const started = performance.now();
  await inParallel(JOBS, PRODUCER_PARALLELISM, async (i) => {
    await queue.add('noop', { i }, { removeOnComplete: { count: 1000 } });
  });
  await waitUntil(() => completed >= JOBS);
  const seconds = (performance.now() - started) / 1000;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  return JOBS / seconds;
}

async function jobfleetPath(prefix: string, databaseUrl: string): Promise<number> {
  const calendar = await startFakeCalendar();
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    QUEUE_PREFIX: prefix,
    QUEUES: 'calendar-sync',
    CALENDAR_SYNC_CONCURRENCY: String(CONCURRENCY),
    GOOGLE_CALENDAR_ROOT_URL: calendar.rootUrl,
  });
  const logger = createLogger({ level: 'silent', serviceName: 'bench' });
  const database = openDatabase({ ...config.database, url: databaseUrl, poolMax: 20 });
  await database.migrate();
  await createTenant(database.db, { id: 'bench', name: 'bench' });
  await googleConnectionRepository.add(database.db, parseKeyring(config.secrets.keys), {
    tenantId: 'bench',
    credential: { kind: 'access-token', token: 'bench-token' },
    access: { policy: 'credential' },
  });
  const producer = createRedisConnection(REDIS_URL, 'producer');
  await waitUntilReady(producer, 5000);
  const workerConnection = createRedisConnection(REDIS_URL, 'worker');
  const queues = createQueues({ names: QUEUE_NAMES, connection: producer, prefix, config });
  const metrics = createMetrics();
  const fleet = await startWorkers({ config, database, connection: workerConnection, logger, metrics });
  let completed = 0;
  fleet.workers.get('calendar-sync')?.on('completed', () => completed++);

  const started = performance.now();
  await inParallel(JOBS, PRODUCER_PARALLELISM, async (i) => {
    const key = `bench-${i}`;
    const request = {
      reservationId: `r-${i}`,
      action: 'create' as const,
      calendarId: 'bench',
      version: 1,
      summary: `bench ${i}`,
      start: { dateTime: '2026-12-01T20:00:00Z', timeZone: 'UTC' },
      end: { dateTime: '2026-12-01T21:00:00Z', timeZone: 'UTC' },
    };
    const jobId = jobIdFor('bench', key);
    const ref = { tenantId: 'bench', scope: 'calendar-sync', key };
    await beginIdempotentRequest(database.db, { ...ref, requestHash: key, jobId, ttlSeconds: 3600, staleAfterSeconds: 60 });
    await enqueue(queues['calendar-sync'], { jobId, name: 'calendar-sync', data: { tenantId: 'bench', idempotencyKey: key, request } });
    await syncStatusRepository.recordEnqueued(database.db, { tenantId: 'bench', kind: 'reservation', entityId: request.reservationId, version: 1, jobId });
    await completeIdempotentRequest(database.db, { ...ref, statusCode: 202, response: { jobId } });
  });
  await waitUntil(() => completed >= JOBS);
  const seconds = (performance.now() - started) / 1000;

  await fleet.close();
  await queues['calendar-sync'].obliterate({ force: true });
  await closeQueues(queues);
  producer.disconnect();
  workerConnection.disconnect();
  await calendar.close();
  await database.close();
  return JOBS / seconds;
}

const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
const dbName = `jobfleet_bench_${randomBytes(4).toString('hex')}`;
await admin.query(`create database ${dbName}`);
const dbUrl = new URL(ADMIN_DB);
dbUrl.pathname = `/${dbName}`;
try {
  const prefix = `jfbench:${randomBytes(3).toString('hex')}`;
  const raw = await rawBullmq(prefix);
  const ours = await jobfleetPath(prefix, dbUrl.toString());
  console.log(`jobs=${JOBS} worker concurrency=${CONCURRENCY}`);
  console.log(`raw BullMQ (add + no-op worker):              ${raw.toFixed(0)} jobs/s`);
  console.log(`jobfleet calendar-sync (idempotent + Calendar): ${ours.toFixed(0)} jobs/s`);
  console.log(`ratio jobfleet / raw: ${(ours / raw).toFixed(3)}`);
} finally {
  await admin.query(`drop database if exists ${dbName} with (force)`);
  await admin.end();
}
