/**
 * What the worker-path benches share: a private redis-server (so INFO commandstats, cpu and memory
 * count this bench's commands only), a migrated database with the bench tenants, the no-op kind,
 * jobs enqueued with the calls the API makes, and jobfleet's or raw BullMQ's workers draining them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { DEFAULT_TENANT_TIERS, loadConfig, type Config } from '@jobfleet/config';
import { createTenant, createTenantLimitsCache, googleConnectionRepository, openDatabase, type Database } from '@jobfleet/db';
import { defineJobKind, jobDataSchema, parsePayload, trackSyncStatus, type AnyJobKind, type KindIntake } from '@jobfleet/kinds';
import { createLogger, createMetrics } from '@jobfleet/observability';
import { connectRedis, createQueues, createRedisConnection, createTenantCapacity, enqueueMany, jobIdFor, waitUntilReady } from '@jobfleet/queue';
import { parseKeyring } from '@jobfleet/secrets';
import { startWorkers } from '@jobfleet/worker';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { createBenchDatabase } from './bench-database';
import { cpuSeconds } from './proc-stats';
import { readRedis, redisWork } from './redis-stats';

/** `key=value` arguments. */
import { args } from './args';

export function waitUntil(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (done()) {
        clearInterval(timer);
        resolve();
      } else if (performance.now() > deadline) {
        clearInterval(timer);
        reject(new Error(`bench: ${what} did not happen within ${timeoutMs} ms`));
      }
    }, 2);
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

export interface BenchRedis {
  url: string;
  /** INFO of one section, as Redis writes it (redis-stats.ts reads it). */
  info(section: string): Promise<string>;
  /** Empties the private instance between rows (never a shared Redis: there is none here). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A redis-server of this bench's own, without persistence, on `port` (default: a free one). */
export async function startBenchRedis(port?: number): Promise<BenchRedis> {
  const chosen = port ?? (await freePort());
  const server: ChildProcess = spawn('redis-server', ['--port', String(chosen), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${chosen}`;
  // Retries until the server listens, for a few seconds.
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: (times) => (times > 50 ? null : 100) });
  // Refused until the server listens; waitUntilReady reports a server that never does.
  client.on('error', () => undefined);
  await waitUntilReady(client, 10_000);
  // A server that exited at once (its port taken) would leave the bench measuring someone else's.
  if (server.exitCode !== null) {
    client.disconnect();
    throw new Error(`bench: redis-server could not start on port ${chosen} (exit code ${server.exitCode})`);
  }
  return {
    url,
    info: (section) => client.info(section),
    async flush() {
      await client.flushall();
      await client.config('RESETSTAT');
    },
    async close() {
      client.disconnect();
      const exited = new Promise((resolve) => (server.exitCode === null ? server.once('exit', resolve) : resolve(undefined)));
      server.kill('SIGTERM');
      await exited;
    },
  };
}

export interface RedisCost {
  /** EVALSHA + EVAL calls per job. */
  scripts: number;
  /** Every command per job. */
  commands: number;
  /** Redis process CPU (user + sys, INFO cpu) per job, µs. */
  cpuUs: number;
}

/** Measures what `work` cost Redis, per job; INFO's own calls are left out. */
export async function redisCostOf<T>(redis: BenchRedis, jobs: number, work: () => Promise<T>): Promise<{ result: T; cost: RedisCost }> {
  const before = await readRedis(redis);
  const result = await work();
  const spent = redisWork(before, await readRedis(redis));
  if (args.breakdown !== undefined) {
    console.log([...spent.perCommand].map(([name, { calls, usec }]) => `${name} ${(calls / jobs).toFixed(2)}/${(usec / jobs).toFixed(1)}µs`).join('  '));
  }
  return { result, cost: { scripts: spent.scripts / jobs, commands: spent.commands / jobs, cpuUs: (spent.cpuSeconds * 1e6) / jobs } };
}

/**
 * Runs `work` under V8's CPU profiler (what `node --cpu-prof` runs for a whole process) when the
 * bench got `profile=<dir>`, writing `<dir>/<name>.cpuprofile` for bench/cpu-profile-summary.ts:
 * only the part that is timed, not the enqueue before it nor the other rows.
 */
export async function profiled<T>(name: string, work: () => Promise<T>): Promise<T> {
  const dir = args.profile;
  if (dir === undefined) return work();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await work();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

export const addCosts = (a: RedisCost, b: RedisCost): RedisCost => ({
  scripts: a.scripts + b.scripts,
  commands: a.commands + b.commands,
  cpuUs: a.cpuUs + b.cpuUs,
});

// A no-op kind that keeps a sync status, so the wrapper's whole cost shows.
const noopRequest = z.strictObject({ id: z.string() });
const noopJob = jobDataSchema(noopRequest);
const noopIntake: KindIntake<z.output<typeof noopRequest>> = {
  summary: 'No-op (bench)',
  entityId: (request) => request.id,
  version: () => 1,
  defaultIdempotencyKey: (request) => `noop:${request.id}`,
  defaultKeyDescription: '`noop:<id>`',
  jobName: () => 'noop',
  requiredScope: 'jobs:write',
};
export const noopKind = defineJobKind({
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
            const data = parsePayload(noopJob, job.data);
            const entity = { tenantId: data.tenantId, kind: 'noop', entityId: data.request.id, version: 1, jobId: job.id ?? 'unknown' };
            return trackSyncStatus({ database, logger, postgres: guards.postgres }, entity, context, () => Promise.resolve({ result: null, externalRef: 'noop' }));
          },
        }),
    }),
});

export const reservation = (i: number) => ({
  reservationId: `r-${i}`,
  action: 'create' as const,
  calendarId: 'bench',
  version: 1,
  summary: `bench ${i}`,
  start: { dateTime: '2026-12-01T20:00:00Z', timeZone: 'UTC' },
  end: { dateTime: '2026-12-01T21:00:00Z', timeZone: 'UTC' },
});

export interface BenchEnv {
  databaseUrl: string;
  tenants: readonly string[];
  /** The tenant of job `i`: round-robin. */
  tenantOf(i: number): string;
  close(): Promise<void>;
}

/** A fresh database with `tenantCount` tenants, each with a Google connection (an access token for `calendarRoot`'s fake). */
export async function createWorkerBenchDatabase(adminUrl: string, tenantCount: number): Promise<BenchEnv> {
  const tenants = Array.from({ length: tenantCount }, (_, index) => `bench-${index}`);
  const keyring = parseKeyring(loadConfig({}).secrets.keys);
  const database = await createBenchDatabase(adminUrl, async (db) => {
    for (const tenantId of tenants) {
      await createTenant(db, { id: tenantId, name: tenantId });
      await googleConnectionRepository.add(db, keyring, { tenantId, credential: { kind: 'access-token', token: 'bench-token' }, access: { policy: 'credential' } });
    }
  });
  return {
    databaseUrl: database.url,
    tenants,
    tenantOf: (i) => tenants[i % tenants.length] ?? 'bench-0',
    close: () => database.drop(),
  };
}

/** Production's defaults but for what a bench must change; a tier no bench reaches. */
export function benchConfig(options: { redisUrl: string; databaseUrl: string; prefix: string; concurrency: number; calendarRootUrl?: string; logLevel: string }): Config & { redis: { url: string } } {
  const enterprise = DEFAULT_TENANT_TIERS.enterprise;
  if (enterprise === undefined) throw new Error('no enterprise tier');
  const unbounded = { ...enterprise, jobsPerDay: 1e9, maxWaitingJobs: 1e9, maxRunningJobs: options.concurrency };
  const config = loadConfig({
    LOG_LEVEL: options.logLevel,
    DATABASE_URL: options.databaseUrl,
    REDIS_URL: options.redisUrl,
    QUEUE_PREFIX: options.prefix,
    WORKER_CONCURRENCY: String(options.concurrency),
    CALENDAR_SYNC_CONCURRENCY: String(options.concurrency),
    ...(options.calendarRootUrl === undefined ? {} : { GOOGLE_CALENDAR_ROOT_URL: options.calendarRootUrl }),
    TENANT_TIERS: JSON.stringify({ ...DEFAULT_TENANT_TIERS, bench: unbounded }),
    TENANT_DEFAULT_TIER: 'bench',
  });
  return { ...config, redis: { ...config.redis, url: options.redisUrl } };
}

export interface Producer {
  /** Enqueues jobs `from` to `to - 1` one request at a time, `inFlight` requests at once: what POST /v1/jobs/<kind> calls. */
  single(from: number, to: number, inFlight: number): Promise<void>;
  /** The same in batches of 500 of one tenant: what the batch route calls. */
  batches(from: number, to: number): Promise<void>;
  queue: Queue;
  close(): Promise<void>;
}

/** Enqueues jobs of `kind` with the queue package's calls the API makes: tenant admission (fair priority), then the add. */
export async function jobfleetProducer(config: Config & { redis: { url: string } }, database: Database, env: BenchEnv, kind: AnyJobKind, request: (i: number) => unknown): Promise<Producer> {
  // The API's 1 s command timeout fails a request fast; here it would end an hour-long memory run
  // over one slow 500-job add on a busy machine, so the bench's producer waits longer.
  const connection = createRedisConnection(config.redis.url, 'producer', { commandTimeoutMs: 30_000 });
  // A producer connection refuses commands until it is ready, as the API's does.
  await waitUntilReady(connection, 10_000);
  const queues = createQueues({ names: [kind.name], connection, prefix: config.redis.prefix, config });
  const queue = queues[kind.name];
  if (queue === undefined) throw new Error('no queue');
  const capacity = createTenantCapacity(connection, config.redis.prefix);
  const limits = createTenantLimitsCache(database.db, config.tenants);
  const jobOf = (i: number) => {
    const tenantId = env.tenantOf(i);
    const body = request(i);
    const idempotencyKey = `key-${i}`;
    const jobId = jobIdFor(tenantId, idempotencyKey);
    return { tenantId, jobId, job: { jobId, name: kind.intake.jobName(body), data: { tenantId, idempotencyKey, request: body, enqueuedAt: new Date().toISOString() } } };
  };
  const quotasOf = async (tenantId: string) => (await limits.limitsOf(tenantId)).quotas(kind.name);
  return {
    queue,
    async single(from, to, inFlight) {
      let next = from;
      const lane = async () => {
        for (let i = next++; i < to; i = next++) {
          const { tenantId, jobId, job } = jobOf(i);
          const admission = await capacity.admit({ kind: kind.name, tenantId, jobId }, await quotasOf(tenantId));
          if (!admission.admitted) throw new Error(`bench job ${i} refused: ${admission.quota}`);
          await enqueueMany(queue, [{ ...job, priority: admission.priority }]);
        }
      };
      await Promise.all(Array.from({ length: inFlight }, lane));
    },
    async batches(from, to) {
      for (const tenantId of env.tenants) {
        const indexes: number[] = [];
        for (let i = from; i < to; i++) if (env.tenantOf(i) === tenantId) indexes.push(i);
        for (let start = 0; start < indexes.length; start += 500) {
          const jobs = indexes.slice(start, start + 500).map((i) => jobOf(i).job);
          const admissions = await capacity.admitMany({ kind: kind.name, tenantId }, jobs.map((job) => job.jobId), await quotasOf(tenantId));
          await enqueueMany(
            queue,
            jobs.map((job, index) => {
              const admission = admissions[index];
              if (!admission?.admitted) throw new Error(`bench job ${job.jobId} refused`);
              return { ...job, priority: admission.priority };
            }),
          );
        }
      }
    },
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}

export interface RunningFleet {
  completed(): number;
  close(): Promise<void>;
}

/** jobfleet's workers serving `kind`, counting completions; `statements` counts Postgres statements. */
export async function startJobfleetWorkers(config: Config & { redis: { url: string } }, database: Database, kind: AnyJobKind): Promise<RunningFleet> {
  const redis = connectRedis({ main: config.redis.url }, 'worker');
  await waitUntilReady(redis.main, 5000);
  // `silent` unless the bench asks for logs: then they go to /dev/null, costing what writing them costs.
  const logger = createLogger({ level: config.logLevel, serviceName: 'bench', destination: nullDestination });
  const fleet = await startWorkers({ config, database, redis, logger, metrics: createMetrics(), kinds: [kind] });
  let completed = 0;
  fleet.workers.get(kind.name)?.on('completed', () => completed++);
  return {
    completed: () => completed,
    async close() {
      await fleet.close();
      redis.disconnect();
    },
  };
}

const nullDestination = { write: () => true };

/** Raw BullMQ: `queue.add` per job, as a plain route would, `inFlight` at once. */
export async function rawFill(redisUrl: string, prefix: string, jobs: number, inFlight: number, request: (i: number) => unknown): Promise<void> {
  const connection = createRedisConnection(redisUrl, 'producer');
  const queue = new Queue('raw', { connection, prefix });
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < jobs; i = next++) {
      await queue.add('job', { tenantId: 'raw', idempotencyKey: `key-${i}`, request: request(i), enqueuedAt: new Date().toISOString() }, { jobId: `raw-${i}` });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  await queue.close();
  connection.disconnect();
}

/** Drains `jobs` jobs of the raw queue with a BullMQ Worker running `processor`; jobs per second. */
export async function rawDrain(redisUrl: string, prefix: string, jobs: number, concurrency: number, processor: (job: Job) => Promise<unknown>): Promise<number> {
  const connection = createRedisConnection(redisUrl, 'worker');
  let completed = 0;
  let failure: Error | undefined;
  const started = performance.now();
  const worker = new Worker('raw', processor, { connection, prefix, concurrency });
  worker.on('completed', () => completed++);
  worker.on('failed', (_job, error) => (failure ??= error));
  await waitUntil(() => completed >= jobs || failure !== undefined, 600_000, 'raw drain');
  const seconds = (performance.now() - started) / 1000;
  await worker.close();
  connection.disconnect();
  if (failure) throw failure;
  return jobs / seconds;
}

/** A statement's opening words: enough to tell the bench's statements apart. */
const statementKind = (query: string) => query.replace(/\s+/g, ' ').trim().slice(0, 48);

/** Opens a database handle counting its statements, in all and by their opening words. */
export function openCountingDatabase(config: Config): { database: Database; statements: () => number; statementsByKind: () => Map<string, number> } {
  let statements = 0;
  const byKind = new Map<string, number>();
  const database = openDatabase({
    ...config.database,
    poolMax: 20,
    onStatement: (query) => {
      statements++;
      const kind = statementKind(query);
      byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
    },
  });
  return { database, statements: () => statements, statementsByKind: () => new Map(byKind) };
}

/**
 * CPU seconds used so far by each Postgres backend of `database`'s own database (the bench's), by
 * pid; undefined when Postgres runs elsewhere (its /proc is not this machine's).
 */
export async function postgresBackendCpu(database: Database): Promise<Map<number, number> | undefined> {
  const backends = await database.rows<{ pid: number }>(sql`select pid from pg_stat_activity where datname = current_database()`);
  const cpu = new Map<number, number>();
  for (const { pid } of backends) {
    const seconds = cpuSeconds(pid);
    if (seconds === undefined) return undefined;
    cpu.set(pid, seconds);
  }
  return cpu;
}

/** The CPU seconds the backends spent between two readings; one started since counts from 0, one gone by then is missed. */
export function postgresCpuSpent(before: Map<number, number> | undefined, after: Map<number, number> | undefined): number | undefined {
  if (before === undefined || after === undefined) return undefined;
  let spent = 0;
  for (const [pid, seconds] of after) spent += seconds - (before.get(pid) ?? 0);
  return spent;
}
