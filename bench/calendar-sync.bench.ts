/**
 * The worker path against raw BullMQ, measured in the same run on the same Redis and Postgres:
 * `npm run bench [-- jobs=2000 concurrency=50]`. Each row adds `jobs` jobs first (addBulk), then
 * times how long workers take to drain them, so only the worker side is measured.
 *
 * raw no-op          BullMQ Worker with an empty processor.
 * raw + insert       BullMQ Worker calling the fake Google Calendar once per job (events.insert
 *                    through googleapis, as calendar-sync does).
 * jobfleet no-op     a kind doing nothing through jobfleet's whole worker wrapper: attempt policy,
 *                    tenant running slots, breakers, metrics, running -> synced status rows.
 * jobfleet calendar  the calendar-sync kind against the same fake.
 *
 * Postgres statements per job are counted by the query builder (openDatabase's onStatement).
 */
import { randomBytes } from 'node:crypto';
import { createCalendarClient } from '@jobfleet/calendar';
import { startFakeCalendar, type FakeCalendar } from '@jobfleet/calendar/fake';
import { loadConfig, type Config } from '@jobfleet/config';
import { googleConnectionRepository, openDatabase, type Database } from '@jobfleet/db';
import { JOB_KINDS, defineJobKind, jobDataSchema, parsePayload, trackSyncStatus, type AnyJobKind, type KindIntake } from '@jobfleet/kinds';
import { createLogger, createMetrics } from '@jobfleet/observability';
import { connectRedis, createRedisConnection, waitUntilReady } from '@jobfleet/queue';
import { parseKeyring } from '@jobfleet/secrets';
import { startWorkers } from '@jobfleet/worker';
import { Queue, Worker, type Job } from 'bullmq';
import { z } from 'zod';
import { createBenchDatabase } from './bench-database';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.split('=') as [string, string]));
const JOBS = Number(args.jobs ?? 2000);
const CONCURRENCY = Number(args.concurrency ?? 50);
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379';
const ADMIN_DB = args.db ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const TENANT = 'bench';

function waitUntil(done: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (done()) {
        clearInterval(timer);
        resolve();
      }
    }, 2);
  });
}

const reservation = (i: number) => ({
  reservationId: `r-${i}`,
  action: 'create' as const,
  calendarId: 'bench',
  version: 1,
  summary: `bench ${i}`,
  start: { dateTime: '2026-12-01T20:00:00Z', timeZone: 'UTC' },
  end: { dateTime: '2026-12-01T21:00:00Z', timeZone: 'UTC' },
});

/** `jobs` jobs as the API would enqueue them (its job schema, a priority of their tenant's). */
async function fill(queue: Queue, request: (i: number) => unknown): Promise<void> {
  for (let start = 0; start < JOBS; start += 500) {
    const indexes = Array.from({ length: Math.min(500, JOBS - start) }, (_, k) => start + k);
    await queue.addBulk(
      indexes.map((i) => ({
        name: 'job',
        data: { tenantId: TENANT, idempotencyKey: `key-${i}`, request: request(i), enqueuedAt: new Date().toISOString() },
        opts: { jobId: `${TENANT}-${i}`, priority: 1 },
      })),
    );
  }
}

/** Jobs per second of a raw BullMQ worker running `processor`. */
async function raw(prefix: string, processor: (job: Job) => Promise<unknown>): Promise<number> {
  const connection = createRedisConnection(REDIS_URL, 'worker');
  const queue = new Queue('raw', { connection, prefix });
  await fill(queue, reservation);
  let completed = 0;
  let failure: Error | undefined;
  const started = performance.now();
  const worker = new Worker('raw', processor, { connection, prefix, concurrency: CONCURRENCY });
  worker.on('completed', () => completed++);
  worker.on('failed', (_job, error) => (failure ??= error));
  await waitUntil(() => completed >= JOBS || failure !== undefined);
  if (failure) throw failure;
  const seconds = (performance.now() - started) / 1000;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  return JOBS / seconds;
}

// A kind that does nothing but keeps a sync status, so the wrapper's whole cost shows.
const noopRequest = z.strictObject({ id: z.string() });
const noopIntake: KindIntake<z.output<typeof noopRequest>> = {
  summary: 'No-op (bench)',
  entityId: (request) => request.id,
  version: () => 1,
  defaultIdempotencyKey: (request) => `noop:${request.id}`,
  defaultKeyDescription: '`noop:<id>`',
  jobName: () => 'noop',
  requiredScope: 'jobs:write',
};
const noopKind = defineJobKind({
  name: 'noop',
  requestSchema: noopRequest,
  syncKind: 'noop',
  intake: noopIntake,
  attemptTimeoutMs: () => 10_000,
  worker: () =>
    Promise.resolve({
      start: ({ database, logger, guards }) =>
        Promise.resolve({
          processor: (job, context) => {
            const data = parsePayload(jobDataSchema(noopRequest), job.data);
            const entity = { tenantId: data.tenantId, kind: 'noop', entityId: data.request.id, version: 1, jobId: job.id ?? 'unknown' };
            return trackSyncStatus({ database, logger, postgres: guards.postgres }, entity, context, () => Promise.resolve({ result: null, externalRef: 'noop' }));
          },
        }),
    }),
});

/** Jobs per second and Postgres statements per job of jobfleet's workers serving `kind`. */
async function jobfleet(prefix: string, databaseUrl: string, calendar: FakeCalendar, kind: AnyJobKind, request: (i: number) => unknown) {
  const config: Config = loadConfig({
    LOG_LEVEL: 'silent',
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    QUEUE_PREFIX: prefix,
    WORKER_CONCURRENCY: String(CONCURRENCY),
    CALENDAR_SYNC_CONCURRENCY: String(CONCURRENCY),
    GOOGLE_CALENDAR_ROOT_URL: calendar.rootUrl,
    // One tenant fills the fleet here: its running slots must not be the bound.
    TENANT_DEFAULT_TIER: 'enterprise',
  });
  let statements = 0;
  const database: Database = openDatabase({ ...config.database, url: databaseUrl, poolMax: 20, onStatement: () => statements++ });
  const redis = connectRedis({ main: REDIS_URL }, 'worker');
  const connection = redis.main;
  await waitUntilReady(connection, 5000);
  const queue = new Queue(kind.name, { connection, prefix });
  await fill(queue, request);
  const fleet = await startWorkers({ config, database, redis, logger: createLogger({ level: 'silent', serviceName: 'bench' }), metrics: createMetrics(), kinds: [kind] });
  let completed = 0;
  fleet.workers.get(kind.name)?.on('completed', () => completed++);
  statements = 0;
  const started = performance.now();
  await waitUntil(() => completed >= JOBS);
  const seconds = (performance.now() - started) / 1000;
  const perJob = statements / JOBS;
  await fleet.close();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  await database.close();
  return { rate: JOBS / seconds, statementsPerJob: perJob };
}

const benchDb = await createBenchDatabase(ADMIN_DB, TENANT, async (db) => {
  await googleConnectionRepository.add(db, parseKeyring(loadConfig({}).secrets.keys), {
    tenantId: TENANT,
    credential: { kind: 'access-token', token: 'bench-token' },
    access: { policy: 'credential' },
  });
});
const calendar = await startFakeCalendar();
try {

  const prefix = `jfbench:${randomBytes(3).toString('hex')}`;
  const client = createCalendarClient({ rootUrl: calendar.rootUrl, credential: { kind: 'access-token', token: 'bench-token' }, tokenUrl: calendar.tokenUrl, timeoutMs: 10_000 });
  // googleapis loads on the first call (seconds): not part of what is timed.
  await client.insertEvent('bench-raw', { id: 'e0000000001', summary: 'warm-up', start: reservation(0).start, end: reservation(0).end });
  const rawNoop = await raw(prefix, () => Promise.resolve());
  // Event ids are base32hex (a-v, 0-9): the hex of the job id is one.
  const rawInsert = await raw(prefix, (job) => {
    const { request } = job.data as { request: ReturnType<typeof reservation> };
    return client.insertEvent('bench-raw', { id: `e${Buffer.from(String(job.id)).toString('hex')}`, summary: request.summary, start: request.start, end: request.end });
  });
  const ourNoop = await jobfleet(prefix, benchDb.url, calendar, noopKind, (i) => ({ id: `n-${i}` }));
  const calendarKind = JOB_KINDS.find((kind) => kind.name === 'calendar-sync');
  if (calendarKind === undefined) throw new Error('no calendar-sync kind');
  const ourCalendar = await jobfleet(prefix, benchDb.url, calendar, calendarKind, reservation);

  console.log(`worker path: jobs=${JOBS} concurrency=${CONCURRENCY} (jobs added first, drain timed)`);
  console.log('path                              jobs/s   ratio   statements/job');
  const row = (name: string, rate: number, baseline: number, statements?: number) =>
    console.log(`${name.padEnd(32)} ${rate.toFixed(0).padStart(7)}   ${(rate / baseline).toFixed(3)}   ${statements === undefined ? '' : statements.toFixed(2)}`);
  row('raw BullMQ no-op', rawNoop, rawNoop);
  row('raw BullMQ + googleapis insert', rawInsert, rawInsert);
  row('jobfleet no-op kind (vs raw no-op)', ourNoop.rate, rawNoop, ourNoop.statementsPerJob);
  row('jobfleet calendar-sync (vs insert)', ourCalendar.rate, rawInsert, ourCalendar.statementsPerJob);
} finally {
  await calendar.close();
  await benchDb.drop();
}
