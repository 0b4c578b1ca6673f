/**
 * HTTP enqueue of one calendar-sync job through the real API against the least a Fastify route
 * can do, in the same run on the same Redis: `npm run bench:http [-- duration=5 connections=50
 * wide=1000 wideDuration=5 warmup=1 log=info profile=1]`.
 *
 * raw      bench/raw-enqueue-server.ts: POST /v1/jobs/calendar-sync -> queue.add -> 202.
 * jobfleet apps/api/src/main.ts as deployed (NODE_ENV=production, LOG_LEVEL=info): API key,
 *          rate limits, validation, idempotency row, admission (the tenant's Google connection,
 *          the tenant capacity script), sync status row, enqueue with a fair-share priority.
 *
 * Each server is a process of its own and autocannon, the load generator, runs in this one. No
 * worker runs: every accepted job stays in Redis, and the bench checks there is one for each 2xx
 * (and none beyond what was sent). Each server gets `warmup` s first (JIT, pools), then
 * `connections` for `duration` s, then `wide` connections held for `wideDuration` s. Prints req/s,
 * p50 and p99 latency, errors (connection errors and timeouts), non-2xx answers, requests
 * unanswered when the run ended and the server's CPU per job of each, and jobfleet/raw. profile=1
 * runs the API under `node --cpu-prof` and prints its top self-time costs
 * (bench/cpu-profile-summary.ts); the profiler slows the API, so take figures from a run without
 * it. Postgres and Redis are the tests' (TEST_ADMIN_DATABASE_URL, REDIS_URL; default the local
 * ones); the bench makes its own database and key prefixes and removes them.
 *
 * only=batch runs the batch route alone (jobfleet, warm-up, then the batch run; no raw server,
 * no single-route modes, no goals): its CPU per job, Redis and Postgres costs, and with profile=1
 * a profile of nothing but batches. redisPort= puts the bench's own Redis on that port (default:
 * any free one).
 *
 * tracing=1 adds the cost of OpenTelemetry: two more jobfleet servers, tracing at 10% and at 100%
 * (parentbased_traceidratio), exporting OTLP/HTTP to a receiver in this process that counts the
 * spans and answers at once; each is measured like jobfleet (tracing off) at `connections` for
 * `tracingDuration` s, `tracingRounds` times in turn (default 2; the best round counts), and
 * printed against it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_TENANT_TIERS } from '@jobfleet/config';
import { createApiKey, createTenant, googleConnectionRepository, openDatabase, tenantLimitsRepository } from '@jobfleet/db';
import { parseKeyring } from '@jobfleet/secrets';
import autocannon from 'autocannon';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { ADMIN_DATABASE_URL, databaseUrl, TEST_REDIS_URL } from '../tests/support/env';
import { reservationRequest } from '../tests/support/fixtures';
import { NODE, REPO_ROOT, waitFor } from '../tests/support/processes';
import { startRedisServer } from '../tests/support/chaos-redis';
import { deletePrefix } from '../tests/support/redis';
import { cpuSeconds } from './proc-stats';
import { readRedis, redisCostPerJob, type RedisCost } from './redis-stats';
import { goalRecorder } from './goals';
import { args } from './args';

const DURATION = Number(args.duration ?? 5);
const CONNECTIONS = Number(args.connections ?? 50);
const WIDE = Number(args.wide ?? 1000);
const WIDE_DURATION = Number(args.wideDuration ?? 5);
const WARMUP = Number(args.warmup ?? 1);
const LOG_LEVEL = args.log ?? 'info';
const PROFILE = args.profile === '1';
const SHARED_REDIS = args.redis === 'shared';
const BATCH_SIZE = Number(args.batchSize ?? 100);
const BATCH_CONNECTIONS = Number(args.batchConnections ?? 10);
const TRACING = args.tracing === '1';
const ONLY_BATCH = args.only === 'batch';
if (args.only !== undefined && !ONLY_BATCH) throw new Error(`only=${args.only}: the one mode that runs alone is only=batch`);
if (ONLY_BATCH && BATCH_SIZE <= 0) throw new Error('only=batch needs batchSize above 0');
const TRACING_DURATION = Number(args.tracingDuration ?? DURATION);
const TRACING_ROUNDS = Number(args.tracingRounds ?? 2);
// The API's API_ACCEPT_CONCURRENCY; unset, its default.
const ACCEPT_CONCURRENCY = args.acceptConcurrency;

const ROUTE = '/v1/jobs/calendar-sync';
const QUEUE = 'calendar-sync';
const TENANT = 'bench-http';
// A tier no run comes near: every request is still counted (rate limits, quotas), none refused.
const UNLIMITED = 1_000_000_000;
const TENANT_TIERS = JSON.stringify({
  ...DEFAULT_TENANT_TIERS,
  bench: { requestsPerMinute: UNLIMITED, keyRequestsPerMinute: UNLIMITED, jobsPerDay: UNLIMITED, maxWaitingJobs: UNLIMITED, maxRunningJobs: 10 },
});

const run = randomBytes(4).toString('hex');
const workDir = mkdtempSync(join(tmpdir(), 'jobfleet-http-bench-'));
const profileDir = join(workDir, 'profile');

type ServerName = 'raw' | 'jobfleet' | 'traced-10' | 'traced-100';
const TRACED: readonly { name: ServerName; ratio: number }[] = [
  { name: 'traced-10', ratio: 0.1 },
  { name: 'traced-100', ratio: 1 },
];
interface Server {
  name: ServerName;
  url: string;
  child: ChildProcess;
  /** Its stdout and stderr. */
  log: string;
  exited: Promise<void>;
  /** From spawn to accepting connections. */
  bootMs: number;
  /** Over all its runs, warm-up included: 2xx answers and requests sent, the bounds of the jobs it left in Redis. */
  accepted: number;
  sent: number;
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => done(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

/** Runs a TypeScript entry point as its own process (node + tsx, like tests/support/processes.ts) on a free port. */
async function startServer(name: ServerName, entry: string, env: (port: number) => Record<string, string>, nodeFlags: readonly string[] = []): Promise<Server> {
  const port = await freePort();
  const log = join(workDir, `${name}.log`);
  const fd = openSync(log, 'w');
  const started = performance.now();
  // A file, not a pipe: this process is the load generator and must not spend its CPU reading logs.
  const child = spawn(NODE, [...nodeFlags, '--import', 'tsx', resolve(REPO_ROOT, entry)], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env(port) },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  await waitFor(
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the ${name} server exited at boot:\n${readFileSync(log, 'utf8').slice(-4000)}`);
      return accepts(port);
    },
    { timeoutMs: 60_000, what: `the ${name} server on port ${port}` },
  );
  return { name, url: `http://127.0.0.1:${port}`, child, log, exited, bootMs: performance.now() - started, accepted: 0, sent: 0 };
}

/** SIGTERM, so the API shuts down as deployed and writes its CPU profile; one that hangs is killed. */
async function stop(server: Server): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 15_000);
  await server.exited;
  clearTimeout(timer);
}

/** A migrated database with one tenant on the bench tier, its Google connection and a jobs:write key. */
async function seedDatabase(url: string, secretsKeys: string): Promise<string> {
  const database = openDatabase({ url, dataDir: '.data', poolMax: 1 });
  try {
    await database.migrate();
    await createTenant(database.db, { id: TENANT, name: TENANT });
    await tenantLimitsRepository.update(database.db, TENANT, { tier: 'bench' });
    // calendar-sync admission refuses a tenant without a connection that may write the calendar.
    await googleConnectionRepository.add(database.db, parseKeyring(secretsKeys), {
      tenantId: TENANT,
      credential: { kind: 'access-token', token: 'bench-token' },
      access: { policy: 'credential' },
    });
    const { key } = await createApiKey(database.db, { tenantId: TENANT, name: 'bench', scopes: ['jobs:write'] });
    return key;
  } finally {
    await database.close();
  }
}

interface Measured {
  result: autocannon.Result;
  /** The server's CPU seconds over the run, finishing the requests cut off at its end included. */
  cpu: number | undefined;
  /** Jobs it added over the same time: the requests it finished, less any it refused. */
  jobs: number;
  /** What the run cost Redis per job (on the bench's own Redis: this server's alone). */
  redis: RedisCost | undefined;
  /** Postgres statements per job, from the server's own counter (jobfleet only). */
  statementsPerJob: number | undefined;
}

/** The API's count of Postgres statements so far (jobfleet_postgres_statements_total on /metrics); undefined for a server without it. */
async function statementsOf(server: Server): Promise<number | undefined> {
  if (server.name !== 'jobfleet') return undefined;
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const value = /^\S*postgres_statements_total(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1];
  return value === undefined ? undefined : Number(value);
}

let sequence = 0;
/** A fresh key and reservation each time: a repeated key is answered as a replay and enqueues nothing. */
const freshJob = () => {
  const id = `${run}-${++sequence}`;
  return { idempotencyKey: id, request: reservationRequest(`r-${id}`) };
};

/** `batchSize` 0: one job per request on the single route; otherwise batches of that many on the batch route. */
async function load(server: Server, apiKey: string, connections: number, seconds: number, batchSize = 0): Promise<autocannon.Result> {
  const result = await autocannon({
    url: server.url + (batchSize === 0 ? ROUTE : `${ROUTE}/batch`),
    method: 'POST',
    connections,
    duration: seconds,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    requests: [
      {
        setupRequest: (request) => {
          if (batchSize > 0) return { ...request, body: JSON.stringify({ jobs: Array.from({ length: batchSize }, freshJob) }) };
          const job = freshJob();
          return { ...request, headers: { ...request.headers, 'idempotency-key': job.idempotencyKey }, body: JSON.stringify(job.request) };
        },
      },
    ],
  });
  // A batch's 2xx accepted batchSize jobs.
  server.accepted += result['2xx'] * Math.max(1, batchSize);
  server.sent += result.requests.sent * Math.max(1, batchSize);
  return result;
}

/** Jobs in a server's queue, and how many a worker took (none should: no worker runs). */
async function jobsIn(queue: Queue): Promise<{ total: number; taken: number }> {
  const counts = await queue.getJobCounts();
  const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
  return { total, taken: (counts.active ?? 0) + (counts.completed ?? 0) + (counts.failed ?? 0) };
}

/**
 * Waits until the server has finished the requests autocannon gave up on when its run ended, so
 * they neither share the CPU with the next run nor meet a shutdown: until its job count holds still.
 */
async function settle(queue: Queue): Promise<void> {
  for (let last = -1; ; ) {
    const { total } = await jobsIn(queue);
    if (total === last) return;
    last = total;
    await new Promise((done) => setTimeout(done, 500));
  }
}

/** One line of the table: undefined prints as "-"; the ratio line has no errors or non-2xx. */
interface Figures {
  rps: number;
  p50: number | undefined;
  p99: number | undefined;
  errors?: number;
  non2xx?: number;
  /** Requests still unanswered when the run ended: left out of the latencies. */
  unanswered?: number;
  cpuMsPerJob: number | undefined;
  statementsPerJob: number | undefined;
  scriptsPerJob: number | undefined;
  redisCommandsPerJob: number | undefined;
  redisCpuMsPerJob: number | undefined;
}

function figuresOf({ result, cpu, jobs, redis: redisCost, statementsPerJob }: Measured): Figures {
  const answered = result['1xx'] + result['2xx'] + result['3xx'] + result['4xx'] + result['5xx'];
  // autocannon reports 0 ms for a run that got no answer at all (every one slower than the run).
  const latency = answered === 0 ? undefined : result.latency;
  return {
    rps: result.requests.average,
    p50: latency?.p50,
    p99: latency?.p99,
    errors: result.errors,
    non2xx: result.non2xx,
    unanswered: Math.max(0, result.requests.sent - answered - result.errors),
    // What one enqueue costs the server; refused requests, if any, count in as overhead.
    cpuMsPerJob: cpu === undefined || jobs === 0 ? undefined : (1000 * cpu) / jobs,
    statementsPerJob,
    scriptsPerJob: redisCost?.scriptsPerJob,
    redisCommandsPerJob: redisCost?.commandsPerJob,
    redisCpuMsPerJob: redisCost?.cpuMsPerJob,
  };
}

const ratio = (ours: number | undefined, theirs: number | undefined) => (ours === undefined || theirs === undefined || theirs === 0 ? undefined : ours / theirs);

function printTable(modes: { label: string; raw: Measured; jobfleet: Measured }[]): void {
  const cell = (value: number | string | undefined, width: number, digits = 0) =>
    (value === undefined ? '-' : typeof value === 'string' ? value : value.toFixed(digits)).padStart(width);
  const line = (mode: string, server: string, f: Figures, digits: number) =>
    console.log(
      `${mode.padEnd(20)}${server.padEnd(14)}${cell(f.rps, 9, digits)}${cell(f.p50, 9, digits)}${cell(f.p99, 9, digits)}` +
        `${cell(f.errors ?? '', 8)}${cell(f.non2xx ?? '', 9)}${cell(f.unanswered ?? '', 12)}${cell(f.cpuMsPerJob, 12, digits === 0 ? 2 : 1)}` +
        `${cell(f.statementsPerJob, 10, 2)}${cell(f.scriptsPerJob, 10, 2)}${cell(f.redisCommandsPerJob, 10, 2)}${cell(f.redisCpuMsPerJob, 12, digits === 0 ? 3 : 2)}`,
    );
  console.log(
    `${'mode'.padEnd(20)}${'server'.padEnd(14)}${cell('req/s', 9)}${cell('p50 ms', 9)}${cell('p99 ms', 9)}${cell('errors', 8)}${cell('non-2xx', 9)}${cell('unanswered', 12)}${cell('CPU ms/job', 12)}` +
      `${cell('PG st/job', 10)}${cell('EVAL/job', 10)}${cell('cmds/job', 10)}${cell('Redis CPU ms', 12)}`,
  );
  for (const mode of modes) {
    const [raw, jobfleet] = [figuresOf(mode.raw), figuresOf(mode.jobfleet)];
    line(mode.label, 'raw', raw, 0);
    line('', 'jobfleet', jobfleet, 0);
    const relative = {
      rps: jobfleet.rps / raw.rps,
      p50: ratio(jobfleet.p50, raw.p50),
      p99: ratio(jobfleet.p99, raw.p99),
      cpuMsPerJob: ratio(jobfleet.cpuMsPerJob, raw.cpuMsPerJob),
      statementsPerJob: undefined,
      scriptsPerJob: ratio(jobfleet.scriptsPerJob, raw.scriptsPerJob),
      redisCommandsPerJob: ratio(jobfleet.redisCommandsPerJob, raw.redisCommandsPerJob),
      redisCpuMsPerJob: ratio(jobfleet.redisCpuMsPerJob, raw.redisCpuMsPerJob),
    };
    line('', 'jobfleet/raw', relative, 2);
  }
  // Little's law: latency is about connections / req/s. A run not much longer than that leaves many
  // requests unanswered at its end, the slowest among them, and its percentiles flatter the server.
  for (const mode of modes) {
    for (const [name, measured] of [['raw', mode.raw], ['jobfleet', mode.jobfleet]] as const) {
      const { unanswered = 0 } = figuresOf(measured);
      if (unanswered > 0.1 * measured.result['2xx']) {
        console.log(`note: ${name} at ${mode.label} left ${unanswered} requests unanswered, ${measured.result['2xx']} answered 2xx: its latencies leave the slowest out; run longer`);
      }
    }
  }
}

/** The batch route's jobs per second, against the raw route's (one job per request) when it ran. */
function printBatch(batch: Measured, rawSingle: Measured | undefined): void {
  const seconds = DURATION;
  const jobsPerSecond = batch.jobs / seconds;
  const rawJobsPerSecond = rawSingle === undefined ? undefined : rawSingle.jobs / seconds;
  const { p50, p99, errors, non2xx, cpuMsPerJob, statementsPerJob, scriptsPerJob, redisCpuMsPerJob } = figuresOf(batch);
  console.log(
    `batch route, ${BATCH_SIZE} jobs per request, ${BATCH_CONNECTIONS} conn × ${seconds} s: ${jobsPerSecond.toFixed(0)} jobs/s ` +
      `(p50 ${String(p50)} ms, p99 ${String(p99)} ms per request, errors ${String(errors)}, non-2xx ${String(non2xx)}; ` +
      `CPU ${cpuMsPerJob?.toFixed(3) ?? '-'} ms/job, PG ${statementsPerJob?.toFixed(3) ?? '-'} st/job, EVAL ${scriptsPerJob?.toFixed(2) ?? '-'}/job, ` +
      `Redis CPU ${redisCpuMsPerJob?.toFixed(3) ?? '-'} ms/job)` +
      (rawJobsPerSecond === undefined ? '' : ` = ${(jobsPerSecond / rawJobsPerSecond).toFixed(2)}× raw's one add per request (${rawJobsPerSecond.toFixed(0)} jobs/s)`),
  );
}

/** Goals 1, 2 and the API side of 4 and 5, for the table of `npm run bench` (bench/goals.ts). */
function recordGoals(modes: readonly { label: string; raw: Measured; jobfleet: Measured }[], batch: Measured | undefined): void {
  const goals = goalRecorder(args.results);
  const [narrow, wide] = modes.map((mode) => ({ label: mode.label, raw: figuresOf(mode.raw), ours: figuresOf(mode.jobfleet) }));
  if (narrow !== undefined) {
    goals.record('1 HTTP enqueue', `req/s vs raw, ${narrow.label}`, narrow.ours.rps / narrow.raw.rps, { atLeast: 0.5 });
    goals.record('1 HTTP enqueue', `p99, ${narrow.label}`, narrow.ours.p99 ?? Number.NaN, { atMost: 20 }, ' ms', 0);
    goals.record('4 Postgres', `API statements/job, ${narrow.label}`, narrow.ours.statementsPerJob ?? Number.NaN, { atMost: 1 });
    goals.record('5 Redis', `API Redis CPU/job vs raw, ${narrow.label}`, (narrow.ours.redisCpuMsPerJob ?? Number.NaN) / (narrow.raw.redisCpuMsPerJob ?? Number.NaN), { atMost: 1.2 });
  }
  if (wide !== undefined) {
    goals.record('1 HTTP enqueue', `errors + non-2xx, ${wide.label}`, (wide.ours.errors ?? 0) + (wide.ours.non2xx ?? 0), { atMost: 0 }, '', 0);
    goals.record('1 HTTP enqueue', `p99, ${wide.label}`, wide.ours.p99 ?? Number.NaN, { report: true }, ' ms', 0);
  }
  if (batch !== undefined && modes[0] !== undefined) {
    goals.record('2 batch enqueue', `jobs/s vs raw's one add per request, ${BATCH_SIZE} a request`, batch.jobs / modes[0].raw.jobs, { atLeast: 3 }, '×');
  }
}

/** Tracing's cost: each traced server's req/s, p99 and CPU per job against jobfleet with tracing off. */
function printTracing(runs: readonly { server: Server; measured: Measured }[], spans: number): void {
  const [off] = runs;
  if (off === undefined) return;
  const base = figuresOf(off.measured);
  console.log(`tracing, ${CONNECTIONS} conn × ${TRACING_DURATION} s, best of ${TRACING_ROUNDS} rounds (OTLP/HTTP to a local receiver, ${spans} spans received):`);
  for (const { server, measured } of runs) {
    const f = figuresOf(measured);
    const label = server.name === 'jobfleet' ? 'off' : server.name.replace('traced-', '') + ' %';
    console.log(
      `  ${label.padEnd(6)} ${f.rps.toFixed(0).padStart(7)} req/s (${(f.rps / base.rps).toFixed(2)}× off)  p99 ${String(f.p99).padStart(5)} ms  ` +
        `CPU ${f.cpuMsPerJob?.toFixed(3) ?? '-'} ms/job${f.cpuMsPerJob !== undefined && base.cpuMsPerJob !== undefined ? ` (${(f.cpuMsPerJob / base.cpuMsPerJob).toFixed(2)}× off)` : ''}`,
    );
  }
}

const prefixes: Record<ServerName, string> = {
  raw: `jfbench-http:${run}:raw`,
  jobfleet: `jfbench-http:${run}:api`,
  'traced-10': `jfbench-http:${run}:traced-10`,
  'traced-100': `jfbench-http:${run}:traced-100`,
};
const dbName = `jobfleet_bench_http_${run}`;
const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
await admin.connect();
await admin.query(`create database ${dbName}`);
// A Redis of the bench's own (AOF as in production), so INFO's figures are this bench's alone;
// redis=shared runs against REDIS_URL instead (its figures then include whatever else uses it).
const privateRedis = SHARED_REDIS ? undefined : await startRedisServer(args.redisPort === undefined ? await freePort() : Number(args.redisPort));
const REDIS_URL = privateRedis?.url ?? TEST_REDIS_URL;
const redis = new Redis(REDIS_URL);
// The bench's own view of each server's queue, to count what it left in Redis.
const queues = Object.fromEntries(Object.entries(prefixes).map(([name, prefix]) => [name, new Queue(QUEUE, { connection: redis, prefix })])) as Record<ServerName, Queue>;
// The collector of the traced servers: counts what it gets and answers at once, as a healthy collector does.
let spansReceived = 0;
const otlpReceiver = createHttpServer((request, response) => {
  let body = '';
  request.on('data', (chunk: Buffer) => (body += chunk.toString()));
  request.on('end', () => {
    spansReceived += body.split('"spanId"').length - 1;
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
if (TRACING) await new Promise<void>((done) => otlpReceiver.listen(0, '127.0.0.1', done));
const servers: Server[] = [];
// The servers' logs (and the profile) stay for a look when something went wrong or was asked for.
let keepWorkDir = PROFILE;
try {
  const secretsKeys = `bench:${randomBytes(32).toString('base64')}`;
  const apiKey = await seedDatabase(databaseUrl(dbName), secretsKeys);
  const raw = ONLY_BATCH
    ? undefined
    : await startServer('raw', 'bench/raw-enqueue-server.ts', (port) => ({
        REDIS_URL,
        QUEUE_PREFIX: prefixes.raw,
        PORT: String(port),
      }));
  if (raw !== undefined) servers.push(raw);
  const apiEnv = (name: ServerName, tracing: Record<string, string>) => (port: number) => ({
      ...tracing,
      NODE_ENV: 'production',
      LOG_LEVEL,
      DATABASE_URL: databaseUrl(dbName),
      REDIS_URL,
      QUEUE_PREFIX: prefixes[name],
      API_HOST: '127.0.0.1',
      API_PORT: String(port),
      ADMIN_PASSWORD: randomBytes(16).toString('hex'),
      CONNECTORS_MODE: 'live',
      SECRETS_KEYS: secretsKeys,
      TENANT_TIERS,
      ...(ACCEPT_CONCURRENCY === undefined ? {} : { API_ACCEPT_CONCURRENCY: ACCEPT_CONCURRENCY }),
    });
  const jobfleet = await startServer('jobfleet', 'apps/api/src/main.ts', apiEnv('jobfleet', {}), PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []);
  servers.push(jobfleet);
  const traced: Server[] = [];
  if (TRACING) {
    const { port } = otlpReceiver.address() as AddressInfo;
    for (const { name, ratio } of TRACED) {
      const tracing = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: String(ratio) };
      traced.push(await startServer(name, 'apps/api/src/main.ts', apiEnv(name, tracing)));
    }
    servers.push(...traced);
  }

  const measure = async (server: Server, connections: number, seconds: number, batchSize = 0): Promise<Measured> => {
    const before = { cpu: cpuSeconds(server.child.pid), jobs: (await jobsIn(queues[server.name])).total, redis: await readRedis(redis), statements: await statementsOf(server) };
    const result = await load(server, apiKey, connections, seconds, batchSize);
    await settle(queues[server.name]);
    const after = { cpu: cpuSeconds(server.child.pid), jobs: (await jobsIn(queues[server.name])).total, redis: await readRedis(redis), statements: await statementsOf(server) };
    const jobs = after.jobs - before.jobs;
    return {
      result,
      cpu: before.cpu === undefined || after.cpu === undefined ? undefined : after.cpu - before.cpu,
      jobs,
      redis: redisCostPerJob(before.redis, after.redis, jobs),
      statementsPerJob: before.statements === undefined || after.statements === undefined || jobs === 0 ? undefined : (after.statements - before.statements) / jobs,
    };
  };
  for (const server of servers) await measure(server, CONNECTIONS, WARMUP);
  const modes = [];
  const singleModes = [
    [CONNECTIONS, DURATION],
    [WIDE, WIDE_DURATION],
  ] as const;
  if (raw !== undefined) {
    for (const [connections, seconds] of singleModes) {
      modes.push({ label: `${connections} conn × ${seconds} s`, raw: await measure(raw, connections, seconds), jobfleet: await measure(jobfleet, connections, seconds) });
    }
  }
  // Goal 2: the batch route's jobs/s against the raw route's one add per request, from the first mode.
  const batch = BATCH_SIZE > 0 ? await measure(jobfleet, BATCH_CONNECTIONS, DURATION, BATCH_SIZE) : undefined;
  // Off, 10 % and 100 % one after the other at the same load, `tracingRounds` times; each keeps
  // its best round (most req/s), so a burst of other work on the machine counts against none.
  const tracingRuns: { server: Server; measured: Measured }[] = [];
  for (let round = 0; round < (TRACING ? TRACING_ROUNDS : 0); round += 1) {
    for (const server of [jobfleet, ...traced]) {
      const measured = await measure(server, CONNECTIONS, TRACING_DURATION);
      const best = tracingRuns.find((run) => run.server === server);
      if (best === undefined) tracingRuns.push({ server, measured });
      else if (figuresOf(measured).rps > figuresOf(best.measured).rps) best.measured = measured;
    }
  }
  for (const server of servers) await stop(server);

  console.log(`HTTP enqueue of one calendar-sync job (autocannon in its own process; jobfleet LOG_LEVEL=${LOG_LEVEL}${PROFILE ? ', under --cpu-prof' : ''})`);
  if (modes.length > 0) printTable(modes);
  if (batch !== undefined) printBatch(batch, modes[0]?.raw);
  if (tracingRuns.length > 0) printTracing(tracingRuns, spansReceived);
  // A partial run (only=batch) measures no goal in full.
  if (!ONLY_BATCH) recordGoals(modes, batch);
  if (modes.some((mode) => [mode.raw, mode.jobfleet].some(({ result }) => result.errors + result.non2xx > 0))) keepWorkDir = true;
  // Requests cut off at the end of a run may still have been accepted: between the 2xx count and the sent count.
  for (const server of servers) {
    const { total, taken } = await jobsIn(queues[server.name]);
    const verdict = total >= server.accepted && total <= server.sent && taken === 0 ? 'ok' : 'MISMATCH';
    console.log(`${server.name}: ${server.accepted} answered 2xx of ${server.sent} sent (warm-up included), ${total} jobs in Redis, ${taken} taken by a worker: ${verdict}`);
    if (verdict !== 'ok') keepWorkDir = true;
  }
  if (PROFILE) {
    // The first bootMs of the profile are module loading, tsx transpiling and migrations.
    const summary = spawn(NODE, ['--import', 'tsx', resolve(REPO_ROOT, 'bench/cpu-profile-summary.ts'), profileDir, `skipMs=${Math.round(jobfleet.bootMs)}`], {
      cwd: REPO_ROOT,
      stdio: 'inherit',
    });
    await new Promise((done) => summary.once('exit', done));
  }
} finally {
  for (const server of servers) await stop(server);
  await Promise.all(Object.values(queues).map((queue) => queue.close()));
  otlpReceiver.close();
  redis.disconnect();
  if (privateRedis === undefined) await Promise.all(Object.values(prefixes).map((prefix) => deletePrefix(prefix)));
  else await privateRedis.close();
  await admin.query(`drop database if exists ${dbName} with (force)`);
  await admin.end();
  if (keepWorkDir) console.log(`server logs${PROFILE ? ' and the CPU profile' : ''} kept in ${workDir}`);
  else rmSync(workDir, { recursive: true, force: true });
}
