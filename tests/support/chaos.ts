import { rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { QUEUE_NAMES, type QueueName } from '@jobfleet/kinds';
import { createApiKey } from '@jobfleet/db';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { backupDirectory, seedBackupSource } from './backup';
import { startRedisServer, type RedisServer } from './chaos-redis';
import { createTestDatabase } from './db';
import { startEntryPoint, waitFor, type RunningProcess } from './processes';
import { startTestSystem, type TestSystem } from './system';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A port nothing listens on right now (the kernel's pick, released at once). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// A process boots in a few seconds alone (tsx resolving and loading modules dominates); several at
// once on a busy 2-core machine, next to other test files, have taken over 40 s.
const BOOT_TIMEOUT_MS = 90_000;

/** Resolves once `child` printed `text`; rejects with its output if it exits or takes over BOOT_TIMEOUT_MS. */
async function waitForOutput(child: RunningProcess, text: string, name: string): Promise<void> {
  const deadline = Date.now() + BOOT_TIMEOUT_MS;
  while (!child.output().includes(text)) {
    if (child.child.exitCode !== null || child.child.signalCode !== null) throw new Error(`${name} exited before '${text}':\n${child.output().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`${name} did not print '${text}' within ${BOOT_TIMEOUT_MS} ms:\n${child.output().slice(-3000)}`);
    await sleep(50);
  }
}

export interface LogLine {
  /** The label: info, warn, error... */
  level: string;
  time: string;
  msg: string;
  jobId?: string;
  [field: string]: unknown;
}

/** A process's JSON (pino) log lines; anything else it printed is skipped. */
export function logLines(child: RunningProcess): LogLine[] {
  return child
    .output()
    .split('\n')
    .flatMap((line) => {
      if (!line.startsWith('{')) return [];
      try {
        return [JSON.parse(line) as LogLine];
      } catch {
        return []; // a line still being written
      }
    });
}

/** The backup definition every chaos system configures: a small seeded database, listed after each dump. */
export const CHAOS_BACKUP_DEFINITION = 'chaos';

/**
 * Fast failure handling, so recovery happens within a scenario: a killed worker's jobs run again
 * after lockDuration (2 s) + stalledInterval (1 s); a dead holder of an AFIP voucher lock blocks
 * its key for 2 s. A job may stall 5 times before BullMQ fails it (sigkill-workers.test.ts says
 * why 5). Small pools: several scenarios and their processes share one Postgres.
 */
const CHAOS_ENV: Readonly<Record<string, string>> = {
  DATABASE_POOL_MAX: '4',
  JOBS_BACKOFF_DELAY_MS: '50',
  WORKER_LOCK_DURATION_MS: '2000',
  WORKER_STALLED_INTERVAL_MS: '1000',
  WORKER_MAX_STALLED_COUNT: '5',
  AFIP_LOCK_TTL_MS: '2000',
  AFIP_LOCK_WAIT_MS: '200',
  // WSAA tickets live a minute (AFIP: 12 h), so renewals and lost logins happen within a scenario.
  AFIP_TICKET_REFRESH_MARGIN_SECONDS: '10',
  AFIP_WSAA_RECHECK_SECONDS: '2',
  DEV_TENANT_ENABLED: 'false',
  // The load resends every refused request within ~250 ms, 8 at a time: through a long outage that
  // nears standard's 3,000 requests a minute. These scenarios are about faults, not rate limits.
  TENANT_DEFAULT_TIER: 'enterprise',
  // Workers log at info: their 'workers started' line is the readiness signal, and 'job completed' lines show who ran what.
  LOG_LEVEL: 'info',
};

const CHAOS_TICKET_TTL_MS = 60_000;

export interface ChaosOptions {
  /** Names the database, queue prefix and tenant. */
  label: string;
  /** Worker processes started with the system. */
  workers: number;
  /** A private redis-server with AOF (`system.redis`) that the test may stop and restart; default the shared Redis under a unique prefix. */
  ownRedis?: boolean;
  /** Workers reach Redis through a TCP fault proxy (`system.redisProxy`); the API stays connected directly. */
  proxyWorkerRedis?: boolean;
  /**
   * The API and the workers reach their database (DATABASE_URL) through a TCP fault proxy
   * (`system.postgresProxy`); the test's own checks and the database that backups dump stay direct.
   */
  proxyPostgres?: boolean;
  /** More environment for the API and every worker; wins over the chaos defaults. */
  env?: Record<string, string>;
}

export interface ChaosWorker {
  /** Its WORKER_ID (`<label>-w<n>`), in its logs and lock audit rows. */
  readonly id: string;
  readonly process: RunningProcess;
  /** Resolves once it serves its queues; rejects if it exits first. */
  readonly ready: Promise<void>;
  isReady(): boolean;
  isAlive(): boolean;
}

export interface ChaosSystem {
  /** Database, fake Calendar, AFIP simulator, tenant; its in-process API is not used. */
  readonly base: TestSystem;
  /** The real API process, over HTTP. */
  readonly apiUrl: string;
  readonly api: RunningProcess;
  /** A key of the tenant with admin, jobs:read and jobs:write. */
  readonly apiKey: string;
  /** Redis as the API sees it (direct), and the queue prefix. */
  readonly redisUrl: string;
  readonly prefix: string;
  readonly redis: RedisServer | undefined;
  readonly redisProxy: TcpProxy | undefined;
  readonly postgresProxy: TcpProxy | undefined;
  readonly backupDirectory: string;
  /** Worker processes still running (booting ones included). */
  liveWorkers(): ChaosWorker[];
  /** Every worker process started, dead ones included (their logs stay readable). */
  allWorkers(): ChaosWorker[];
  startWorker(): ChaosWorker;
  /** Sends `signal` and waits for the exit. */
  stopWorker(worker: ChaosWorker, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** BullMQ queues on the direct Redis connection, for inspection (commands wait through Redis restarts). */
  queues(): Record<QueueName, Queue>;
  /** Records a chaos event with the time since start, for the report. */
  note(event: string): void;
  timeline(): string[];
  /** Kills every process, then removes every database, key, directory and server; all steps run, their errors are thrown together. */
  close(): Promise<void>;
}

/** Undo steps, run last-registered first; every step runs even when others fail. */
class Cleanup {
  readonly #steps: (() => unknown)[] = [];
  add(step: () => unknown): void {
    this.#steps.push(step);
  }
  async run(): Promise<void> {
    const errors: unknown[] = [];
    // Last in, first out: processes die before the databases and servers they use go away.
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'chaos system cleanup failed');
  }
}

/**
 * The fleet as separate processes: a real API process (HTTP on 127.0.0.1), `workers` worker
 * processes serving all three queues, the test's own database, fake Calendar and AFIP simulator,
 * a seeded database to back up into a temporary directory, and optionally a private Redis and
 * fault proxies in front of Redis (workers) and Postgres (API and workers).
 */
export async function startChaosSystem(options: ChaosOptions): Promise<ChaosSystem> {
  const cleanup = new Cleanup();
  const startedAt = Date.now();
  const events: string[] = [];
  const note = (event: string) => events.push(`+${((Date.now() - startedAt) / 1000).toFixed(1)}s ${event}`);
  try {
    const redis = options.ownRedis ? await startRedisServer(await freePort()) : undefined;
    if (redis) cleanup.add(() => redis.close());

    const source = await createTestDatabase();
    cleanup.add(() => source.drop());
    await seedBackupSource(source.url, { customers: 200, orders: 2000 });
    const directory = await backupDirectory();
    cleanup.add(() => rm(directory, { recursive: true, force: true }));

    const base = await startTestSystem({
      label: options.label,
      workers: false,
      afip: { ticketTtlMs: CHAOS_TICKET_TTL_MS },
      env: {
        ...CHAOS_ENV,
        ...(redis ? { REDIS_URL: redis.url } : {}),
        BACKUP_TARGETS: JSON.stringify({ local: { type: 'filesystem', directory } }),
        BACKUP_DEFINITIONS: JSON.stringify([
          { name: CHAOS_BACKUP_DEFINITION, databaseUrl: source.url, target: 'local', cron: '0 0 1 1 *', restoreCheck: 'list' },
        ]),
        ...options.env,
      },
    });
    cleanup.add(() => base.close());
    const redisUrl = base.childEnv.REDIS_URL ?? '';
    const prefix = base.childEnv.QUEUE_PREFIX ?? '';

    const redisProxy = options.proxyWorkerRedis ? await startTcpProxy({ targetPort: Number(new URL(redisUrl).port) }) : undefined;
    if (redisProxy) cleanup.add(() => redisProxy.close());
    const database = new URL(base.childEnv.DATABASE_URL ?? '');
    const postgresProxy = options.proxyPostgres
      ? await startTcpProxy({ targetHost: database.hostname, targetPort: Number(database.port || 5432) })
      : undefined;
    if (postgresProxy) {
      cleanup.add(() => postgresProxy.close());
      database.hostname = '127.0.0.1';
      database.port = String(postgresProxy.port);
    }
    // What the API and the workers get: the test system's environment, through the proxies asked for.
    const serviceEnv = { ...base.childEnv, DATABASE_URL: database.toString() };

    const children: RunningProcess[] = [];
    cleanup.add(() => Promise.all(children.map((child) => child.kill('SIGKILL'))));

    const apiPort = await freePort();
    const api = startEntryPoint('apps/api/src/main.ts', {
      ...serviceEnv,
      // Request logs would be one line per request: warnings are what matter here.
      LOG_LEVEL: 'warn',
      API_HOST: '127.0.0.1',
      API_PORT: String(apiPort),
    });
    children.push(api);
    const apiUrl = `http://127.0.0.1:${apiPort}`;

    const { key: apiKey } = await createApiKey(base.testDb.database.db, {
      tenantId: base.tenantId,
      name: 'chaos',
      scopes: ['fleet:admin', 'jobs:read', 'jobs:write'],
    });

    const workers: ChaosWorker[] = [];
    const workerEnv = { ...serviceEnv, ...(redisProxy ? { REDIS_URL: `redis://127.0.0.1:${redisProxy.port}` } : {}) };
    const startWorker = (): ChaosWorker => {
      const id = `${options.label}-w${workers.length + 1}`;
      const child = startEntryPoint('apps/worker/src/main.ts', { ...workerEnv, WORKER_ID: id });
      children.push(child);
      let ready = false;
      const alive = () => child.child.exitCode === null && child.child.signalCode === null;
      const worker: ChaosWorker = {
        id,
        process: child,
        ready: waitForOutput(child, 'workers started', `worker ${id}`).then(() => {
          ready = true;
          note(`${id} serving`);
        }),
        isReady: () => ready && alive(),
        isAlive: alive,
      };
      // A worker killed while booting never gets ready; whoever awaits `ready` sees the reason.
      worker.ready.catch(() => undefined);
      void child.exited.then(({ code, signal }) => note(`${id} exited (${signal ?? `code ${String(code)}`})`));
      workers.push(worker);
      return worker;
    };
    for (let i = 0; i < options.workers; i++) startWorker();

    await waitFor(
      async () => {
        if (api.child.exitCode !== null) throw new Error(`the API exited:\n${api.output()}`);
        return fetch(`${apiUrl}/health/live`).then((r) => r.ok, () => false);
      },
      { timeoutMs: BOOT_TIMEOUT_MS, what: `the API on ${apiUrl}\n${api.output()}`, intervalMs: 100 },
    );
    await Promise.all(workers.map((w) => w.ready));

    let queues: Record<QueueName, Queue> | undefined;
    const inspect = () => {
      if (queues) return queues;
      // Commands wait through a Redis restart instead of failing.
      const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
      connection.on('error', () => undefined);
      const opened = Object.fromEntries(QUEUE_NAMES.map((name) => [name, new Queue(name, { connection, prefix })])) as Record<QueueName, Queue>;
      cleanup.add(async () => {
        await Promise.all(Object.values(opened).map((q) => q.close()));
        connection.disconnect();
      });
      queues = opened;
      return opened;
    };

    return {
      base,
      apiUrl,
      api,
      apiKey,
      redisUrl,
      prefix,
      redis,
      redisProxy,
      postgresProxy,
      backupDirectory: directory,
      liveWorkers: () => workers.filter((w) => w.isAlive()),
      allWorkers: () => [...workers],
      startWorker,
      async stopWorker(worker, signal) {
        await worker.process.kill(signal);
        return worker.process.exited;
      },
      queues: inspect,
      note,
      timeline: () => [...events],
      close: () => cleanup.run(),
    };
  } catch (error) {
    await cleanup.run().catch(() => undefined);
    throw error;
  }
}
