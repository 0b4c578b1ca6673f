/**
 * The worker path against raw BullMQ, measured in the same run on a redis-server of the bench's own
 * and the machine's Postgres: `npm run bench [-- jobs=3000 concurrency=50 tenants=4 log=info rounds=1]`.
 *
 * Each row first enqueues `jobs` jobs (`concurrency` requests at once), then times how long the
 * workers (concurrency `concurrency`) take to drain them; Redis' INFO commandstats and cpu are read
 * around both halves, so every job's whole life in Redis is counted.
 *
 * raw no-op          `queue.add` per job, then a BullMQ Worker with an empty processor.
 * raw + insert       the same, the processor calling the fake Google Calendar once per job
 *                    (events.insert through googleapis, as calendar-sync does).
 * jobfleet no-op     the API's calls (tenant admission with its fair priority, then the add), then
 *                    a kind doing nothing through jobfleet's whole worker wrapper: attempt policy,
 *                    tenant running slots, breakers, metrics, logs, running -> synced status rows.
 * jobfleet calendar  the calendar-sync kind against the same fake.
 *
 * Modes (opt-in, each bounded by its arguments):
 * mode=memory jobs=1000000   N jobs through the no-op kind with the default retention, enqueued
 *                            in batches while workers drain them; Redis used_memory after.
 * mode=flatness sizes=10000,100000,1000000 sample=8000
 *                            the queue pre-filled with N waiting jobs, then the drain rate of the
 *                            first `sample` of them, for each N (after a small warm-up drain).
 * Postgres statements per job are counted by the query builder (openDatabase's onStatement).
 */
import { createCalendarClient } from '@jobfleet/calendar';
import { startFakeCalendar } from '@jobfleet/calendar/fake';
import { JOB_KINDS, type AnyJobKind } from '@jobfleet/kinds';
import type { Job } from 'bullmq';
import { randomBytes } from 'node:crypto';
import {
  addCosts,
  benchConfig,
  createWorkerBenchDatabase,
  jobfleetProducer,
  noopKind,
  openCountingDatabase,
  postgresBackendCpu,
  postgresCpuSpent,
  profiled,
  rawDrain,
  rawFill,
  redisCostOf,
  reservation,
  startBenchRedis,
  startJobfleetWorkers,
  waitUntil,
  type BenchEnv,
  type BenchRedis,
  type RedisCost,
} from './worker-harness';
import { args } from './args';
import { goalRecorder } from './goals';
import { infoFields } from './redis-stats';

const MODE = args.mode ?? 'path';
const JOBS = Number(args.jobs ?? (MODE === 'memory' ? 100_000 : 3000));
const CONCURRENCY = Number(args.concurrency ?? 50);
const TENANTS = Number(args.tenants ?? 4);
const LOG_LEVEL = args.log ?? 'info';
const ROUNDS = Number(args.rounds ?? 1);
const ADMIN_DB = args.db ?? 'postgres://postgres@127.0.0.1:5432/postgres';
// A whole row must end: a stuck drain is a bug, not a slow machine.
const DRAIN_TIMEOUT_MS = 30 * 60_000;
const goals = goalRecorder(args.results);

const noopRequest = (i: number) => ({ id: `n-${i}` });
const WARM_UP_JOBS = 2000;

function configFor(redis: BenchRedis, env: BenchEnv, calendarRootUrl?: string) {
  return benchConfig({
    redisUrl: redis.url,
    databaseUrl: env.databaseUrl,
    prefix: `jfbench:${randomBytes(3).toString('hex')}`,
    concurrency: CONCURRENCY,
    logLevel: LOG_LEVEL,
    ...(calendarRootUrl === undefined ? {} : { calendarRootUrl }),
  });
}

interface Row {
  rate: number;
  /** This process's CPU (user + system) per job while the workers drain: the worker's cost, whatever else the machine runs. */
  drainCpuUs: number;
  enqueue: RedisCost;
  worker: RedisCost;
  statementsPerJob?: number;
  /** The Postgres backends' CPU per job while the workers drain (this machine's Postgres only). */
  postgresCpuUs?: number;
}

function cpuPerJob(since: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(since);
  return (user + system) / JOBS;
}

async function rawRow(name: string, redis: BenchRedis, processor: Parameters<typeof rawDrain>[4], request: (i: number) => unknown): Promise<Row> {
  await redis.flush();
  const prefix = 'jfbench-raw';
  const enqueue = await redisCostOf(redis, JOBS, () => rawFill(redis.url, prefix, JOBS, CONCURRENCY, request));
  const cpu = process.cpuUsage();
  const drain = await redisCostOf(redis, JOBS, () => profiled(name, () => rawDrain(redis.url, prefix, JOBS, CONCURRENCY, processor)));
  return { rate: drain.result, drainCpuUs: cpuPerJob(cpu), enqueue: enqueue.cost, worker: drain.cost };
}

async function jobfleetRow(redis: BenchRedis, env: BenchEnv, kind: AnyJobKind, request: (i: number) => unknown, calendarRootUrl?: string): Promise<Row> {
  await redis.flush();
  const config = configFor(redis, env, calendarRootUrl);
  const { database, statements, statementsByKind } = openCountingDatabase(config);
  const producer = await jobfleetProducer(config, database, env, kind, request);
  const enqueue = await redisCostOf(redis, JOBS, () => producer.single(0, JOBS, CONCURRENCY));
  const before = statements();
  const kindsBefore = statementsByKind();
  const postgresBefore = await postgresBackendCpu(database);
  const cpu = process.cpuUsage();
  const drain = await redisCostOf(redis, JOBS, () =>
    profiled(`jobfleet-${kind.name}`, async () => {
      const started = performance.now();
      const fleet = await startJobfleetWorkers(config, database, kind);
      await waitUntil(() => fleet.completed() >= JOBS, DRAIN_TIMEOUT_MS, `${kind.name} drain`);
      const seconds = (performance.now() - started) / 1000;
      await fleet.close();
      return JOBS / seconds;
    }),
  );
  const drainCpuUs = cpuPerJob(cpu);
  const postgresSeconds = postgresCpuSpent(postgresBefore, await postgresBackendCpu(database));
  const statementsPerJob = (statements() - before) / JOBS;
  if (args.breakdown !== undefined) {
    const spent = [...statementsByKind()].map(([text, n]) => [text, n - (kindsBefore.get(text) ?? 0)] as const).filter(([, n]) => n > 0);
    console.log(`${kind.name} worker statements per job: ${spent.map(([text, n]) => `${(n / JOBS).toFixed(3)} ${text}`).join('  |  ')}`);
  }
  await producer.close();
  await database.close();
  return {
    rate: drain.result,
    drainCpuUs,
    enqueue: enqueue.cost,
    worker: drain.cost,
    statementsPerJob,
    ...(postgresSeconds === undefined ? {} : { postgresCpuUs: (postgresSeconds * 1e6) / JOBS }),
  };
}

async function pathMode(redis: BenchRedis, env: BenchEnv): Promise<void> {
  const calendar = await startFakeCalendar();
  try {
    const client = createCalendarClient({ rootUrl: calendar.rootUrl, credential: { kind: 'access-token', token: 'bench-token' }, tokenUrl: calendar.tokenUrl, timeoutMs: 10_000 });
    // googleapis loads on the first call (seconds): not part of what is timed.
    await client.insertEvent('bench-raw', { id: 'e0000000001', summary: 'warm-up', start: reservation(0).start, end: reservation(0).end });
    const calendarKind = JOB_KINDS.find((kind) => kind.name === 'calendar-sync');
    if (calendarKind === undefined) throw new Error('no calendar-sync kind');
    // Event ids are base32hex (a-v, 0-9): the hex of the job id is one.
    const insert = (job: Job) => {
      const { request } = job.data as { request: ReturnType<typeof reservation> };
      return client.insertEvent('bench-raw', { id: `e${Buffer.from(String(job.id)).toString('hex')}`, summary: request.summary, start: request.start, end: request.end });
    };
    // Each round runs the four rows in turn; each row reports its median round by rate, so a burst
    // of load from elsewhere on a shared machine skews one round, not the ratios.
    const rounds: Row[][] = [[], [], [], []];
    for (let round = 0; round < ROUNDS; round++) {
      rounds[0]?.push(await rawRow('raw-noop', redis, () => Promise.resolve(), reservation));
      rounds[1]?.push(await rawRow('raw-insert', redis, insert, reservation));
      rounds[2]?.push(await jobfleetRow(redis, env, noopKind, noopRequest));
      rounds[3]?.push(await jobfleetRow(redis, env, calendarKind, reservation, calendar.rootUrl));
    }
    const [rawNoop, rawInsert, ourNoop, ourCalendar] = rounds.map((rows) => {
      const median = [...rows].sort((a, b) => a.rate - b.rate)[Math.floor(rows.length / 2)];
      if (median === undefined) throw new Error('no round ran');
      return median;
    }) as [Row, Row, Row, Row];

    console.log(`worker path: jobs=${JOBS} concurrency=${CONCURRENCY} tenants=${TENANTS} log=${LOG_LEVEL} rounds=${ROUNDS} (jobs enqueued first, drain timed; Redis of the bench's own)`);
    console.log('per job, its whole life: scripts = EVALSHA+EVAL (enqueue+worker), commands = all, scripts\' own included; Redis CPU = INFO cpu (enqueue+worker)');
    console.log('worker CPU = this process\'s CPU per job while draining (process.cpuUsage); its ratio is raw\'s over this row\'s, on the scale of the jobs/s ratio');
    console.log('pg CPU = the CPU of the Postgres backends serving the workers, per job while draining (/proc; blank when Postgres runs elsewhere)');
    console.log('path                                  jobs/s   ratio  worker CPU µs/job (ratio)  pg stmts/job  pg CPU µs/job  scripts/job (enq+wrk)  commands/job  Redis CPU µs/job (enq+wrk)  CPU ratio');
    const row = (name: string, r: Row, baseline: Row) => {
      const life = addCosts(r.enqueue, r.worker);
      const baseLife = addCosts(baseline.enqueue, baseline.worker);
      console.log(
        [
          name.padEnd(36),
          r.rate.toFixed(0).padStart(7),
          (r.rate / baseline.rate).toFixed(3).padStart(7),
          `${r.drainCpuUs.toFixed(0)} (${(baseline.drainCpuUs / r.drainCpuUs).toFixed(3)})`.padStart(26),
          (r.statementsPerJob === undefined ? '' : r.statementsPerJob.toFixed(2)).padStart(13),
          (r.postgresCpuUs === undefined ? '' : r.postgresCpuUs.toFixed(0)).padStart(13),
          `${life.scripts.toFixed(2)} (${r.enqueue.scripts.toFixed(2)}+${r.worker.scripts.toFixed(2)})`.padStart(22),
          life.commands.toFixed(1).padStart(13),
          `${life.cpuUs.toFixed(0)} (${r.enqueue.cpuUs.toFixed(0)}+${r.worker.cpuUs.toFixed(0)})`.padStart(26),
          (life.cpuUs / baseLife.cpuUs).toFixed(2).padStart(10),
        ].join(' '),
      );
    };
    row('raw BullMQ no-op', rawNoop, rawNoop);
    row('raw BullMQ + googleapis insert', rawInsert, rawInsert);
    row('jobfleet no-op kind (vs raw no-op)', ourNoop, rawNoop);
    row('jobfleet calendar-sync (vs insert)', ourCalendar, rawInsert);
    const lifeOf = (r: Row) => addCosts(r.enqueue, r.worker);
    goals.record('3 worker path', 'no-op kind, jobs/s vs raw no-op', ourNoop.rate / rawNoop.rate, { atLeast: 0.8 });
    goals.record('3 worker path', 'calendar-sync, jobs/s vs raw + insert', ourCalendar.rate / rawInsert.rate, { atLeast: 0.7 });
    goals.record('4 Postgres', 'worker statements/job, no-op kind', ourNoop.statementsPerJob ?? Number.NaN, { atMost: 0.2 });
    goals.record('4 Postgres', 'worker statements/job, calendar-sync', ourCalendar.statementsPerJob ?? Number.NaN, { atMost: 0.2 });
    goals.record('5 Redis', 'scripts/job (a life), calendar-sync', lifeOf(ourCalendar).scripts, { atMost: 2.5 });
    goals.record('5 Redis', 'Redis CPU/job vs raw, no-op kind', lifeOf(ourNoop).cpuUs / lifeOf(rawNoop).cpuUs, { atMost: 1.2 });
    goals.record('5 Redis', 'Redis CPU/job vs raw, calendar-sync', lifeOf(ourCalendar).cpuUs / lifeOf(rawInsert).cpuUs, { atMost: 1.2 });
  } finally {
    await calendar.close();
  }
}

/** N jobs through the no-op kind, at most `window` of them waiting at once; Redis memory after. */
async function memoryMode(redis: BenchRedis, env: BenchEnv): Promise<void> {
  await redis.flush();
  const usedMemory = async () => Number(infoFields(await redis.info('memory')).get('used_memory'));
  const baseline = await usedMemory();
  const config = configFor(redis, env);
  const { database } = openCountingDatabase(config);
  const producer = await jobfleetProducer(config, database, env, noopKind, noopRequest);
  const fleet = await startJobfleetWorkers(config, database, noopKind);
  const window = 20_000;
  const started = performance.now();
  let peak = 0;
  for (let enqueued = 0; enqueued < JOBS; ) {
    await waitUntil(() => enqueued - fleet.completed() < window / 2, DRAIN_TIMEOUT_MS, 'memory-mode drain');
    const to = Math.min(JOBS, enqueued + window / 2);
    await producer.batches(enqueued, to);
    enqueued = to;
    peak = Math.max(peak, await usedMemory());
    if (enqueued % 100_000 === 0) console.log(`  ${enqueued} enqueued, ${fleet.completed()} completed, used_memory ${(peak / 2 ** 20).toFixed(1)} MB at most so far`);
  }
  await waitUntil(() => fleet.completed() >= JOBS, DRAIN_TIMEOUT_MS, 'memory-mode drain');
  const seconds = (performance.now() - started) / 1000;
  await fleet.close();
  const memory = infoFields(await redis.info('memory'));
  const keys = Object.fromEntries(infoFields(await redis.info('keyspace')));
  await producer.close();
  await database.close();
  const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
  console.log(`redis memory: ${JOBS} jobs through the no-op kind (default retention: removeOnComplete ${JSON.stringify(config.jobs.removeOnComplete)}), ${seconds.toFixed(0)} s`);
  console.log(`used_memory before ${mb(baseline)}, highest while running ${mb(peak)}, after ${mb(Number(memory.get('used_memory')))} (rss ${mb(Number(memory.get('used_memory_rss')))}); keyspace ${JSON.stringify(keys)}`);
  goals.record('5 Redis', `used_memory after ${JOBS} jobs, default retention`, Number(memory.get('used_memory')) / 2 ** 20, { atMost: 200 }, ' MB', 1);
}

/** The drain rate of the first `sample` jobs with N waiting, for each N. */
async function flatnessMode(redis: BenchRedis, env: BenchEnv): Promise<void> {
  const sizes = (args.sizes ?? '10000,100000,1000000').split(',').map(Number);
  // Below the smallest N, so every N is measured over the same jobs, none of them the queue's last.
  const sample = Number(args.sample ?? 8000);
  const results: { size: number; rate: number; fillSeconds: number }[] = [];
  // The first drain of a process runs cold (JIT, connections): a small one first, not reported.
  for (const size of [WARM_UP_JOBS, ...sizes]) {
    await redis.flush();
    const config = configFor(redis, env);
    const { database } = openCountingDatabase(config);
    const producer = await jobfleetProducer(config, database, env, noopKind, noopRequest);
    const fillStarted = performance.now();
    await producer.batches(0, size);
    const fillSeconds = (performance.now() - fillStarted) / 1000;
    const started = performance.now();
    const fleet = await startJobfleetWorkers(config, database, noopKind);
    const target = Math.min(sample, size);
    await waitUntil(() => fleet.completed() >= target, DRAIN_TIMEOUT_MS, 'flatness drain');
    const rate = target / ((performance.now() - started) / 1000);
    await fleet.close();
    await producer.close();
    await database.close();
    if (size === WARM_UP_JOBS) continue;
    results.push({ size, rate, fillSeconds });
    console.log(`  ${size} waiting: ${rate.toFixed(0)} jobs/s over the first ${target} (filled in ${fillSeconds.toFixed(0)} s)`);
  }
  const first = results[0]?.rate ?? 1;
  console.log(`flatness: no-op kind, concurrency ${CONCURRENCY}, ${TENANTS} tenants, drain rate of the first ${sample} jobs`);
  console.log('waiting jobs   jobs/s   vs smallest');
  for (const { size, rate } of results) console.log(`${String(size).padStart(12)}   ${rate.toFixed(0).padStart(6)}   ${(rate / first).toFixed(3)}`);
  const rates = results.map(({ rate }) => rate);
  const mean = rates.reduce((sum, rate) => sum + rate, 0) / Math.max(1, rates.length);
  const spread = Math.max(...rates.map((rate) => Math.abs(rate / mean - 1))) * 100;
  goals.record('5 Redis', `drain rate's widest gap from the mean, ${sizes.join('/')} waiting`, spread, { atMost: 15 }, ' %', 0);
}

const redis = await startBenchRedis(args.redisPort === undefined ? undefined : Number(args.redisPort));
const env = await createWorkerBenchDatabase(ADMIN_DB, TENANTS);
try {
  if (MODE === 'path') await pathMode(redis, env);
  else if (MODE === 'memory') await memoryMode(redis, env);
  else if (MODE === 'flatness') await flatnessMode(redis, env);
  else throw new Error(`unknown mode ${MODE}: path, memory or flatness`);
} finally {
  await env.close();
  await redis.close();
}
