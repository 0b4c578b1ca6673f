/**
 * Two Redis instances against one, for the same no-op workload on two queues:
 * `tsx bench/redis-shards.bench.ts [jobs=5000 concurrency=50 rounds=5]` (part of `npm run bench`).
 *
 * Two private redis-servers (127.0.0.1:7221 and :7222, no persistence) are started. Each row adds
 * `jobs` jobs to each of the queues `shard-a` and `shard-b` (addBulk, in chunks), then drains both
 * with one BullMQ worker per queue, all connections made by connectRedis from a REDIS_QUEUE_URLS
 * topology: "one Redis" puts both queues on the first instance, "two Redis" the second queue on
 * the second instance. Per instance it reads INFO cpu (used_cpu_sys + used_cpu_user) and INFO
 * commandstats before and after, so the table shows the Redis CPU and the commands each job cost
 * there, and the capacity that implies: one core of Redis divided by its CPU per job.
 *
 * The pair of rows is measured `rounds` times, one Redis and two in turn, and the goal is the
 * median round's ratio: single pairs on a noisy 2-core machine moved between 1.57x and 2.25x.
 */
import { randomBytes } from 'node:crypto';
import type { QueueRedisInstance } from '@jobfleet/config';
import { connectRedis, waitUntilReady, type RedisConnections } from '@jobfleet/queue';
import { Queue, Worker } from 'bullmq';
import { startRedisServer, type RedisServer } from '../tests/support/chaos-redis';
import { readRedis, redisWork } from './redis-stats';
import { goalRecorder } from './goals';
import { args } from './args';
import { median } from './median';

const JOBS = Number(args.jobs ?? 5000);
const CONCURRENCY = Number(args.concurrency ?? 50);
const ROUNDS = Number(args.rounds ?? 5);
const QUEUES = ['shard-a', 'shard-b'] as const;
const ADD_CHUNK = 500;
// Every phase ends by this deadline even if a worker stalls: the bench never hangs.
const PHASE_TIMEOUT_MS = 25_000;

async function waitUntil(done: () => boolean, deadline: number, what: string): Promise<void> {
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function phase(label: string, servers: readonly RedisServer[], queueInstances: readonly QueueRedisInstance[]) {
  const prefix = `{bench-shards-${randomBytes(3).toString('hex')}}`;
  const topology = { main: servers[0]?.url ?? '', queueInstances };
  // Worker-role connections for the producer too: a loaded 2-core machine must not time commands out.
  const producer: RedisConnections = connectRedis(topology, 'worker', { name: 'bench-producer' });
  const workers: RedisConnections = connectRedis(topology, 'worker', { name: 'bench-worker' });
  await Promise.all([...producer.instances.values(), ...workers.instances.values()].map((client) => waitUntilReady(client, 5000)));
  const instances = [...producer.instances];
  const before = await Promise.all(instances.map(([, client]) => readRedis(client)));
  const started = performance.now();

  const queues = QUEUES.map((name) => new Queue(name, { connection: producer.forQueue(name), prefix, skipVersionCheck: true }));
  await Promise.all(
    queues.map(async (queue) => {
      for (let offset = 0; offset < JOBS; offset += ADD_CHUNK) {
        const count = Math.min(ADD_CHUNK, JOBS - offset);
        await queue.addBulk(Array.from({ length: count }, (_, i) => ({ name: 'noop', data: { i: offset + i }, opts: { removeOnComplete: true } })));
      }
    }),
  );
  const added = performance.now();
  let completed = 0;
  const drainers = QUEUES.map(
    (name) =>
      new Worker(name, async () => undefined, { connection: workers.forQueue(name), prefix, concurrency: CONCURRENCY }).on('completed', () => {
        completed += 1;
      }),
  );
  await waitUntil(() => completed >= JOBS * QUEUES.length, Date.now() + PHASE_TIMEOUT_MS, `${label}: the workers to drain`);
  const drained = performance.now();

  const after = await Promise.all(instances.map(([, client]) => readRedis(client)));
  await Promise.all(drainers.map((worker) => worker.close()));
  for (const queue of queues) await queue.obliterate({ force: true });
  await Promise.all(queues.map((queue) => queue.close()));
  producer.disconnect();
  workers.disconnect();

  const total = JOBS * QUEUES.length;
  const perInstance = instances.map(([name], index) => {
    const [then, now] = [before[index], after[index]];
    if (then === undefined || now === undefined) throw new Error(`no INFO reading of ${name}`);
    const used = redisWork(then, now);
    const jobsHere = QUEUES.filter((queue) => producer.instanceOf(queue) === name).length * JOBS;
    return { name, jobsHere, ...used };
  });
  return {
    label,
    addRate: total / ((added - started) / 1000),
    drainRate: total / ((drained - added) / 1000),
    seconds: (drained - started) / 1000,
    perInstance,
  };
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const servers = [await startRedisServer(7221, { appendonly: false }), await startRedisServer(7222, { appendonly: false })];
try {
  const second = servers[1]?.url ?? '';
  type Phase = Awaited<ReturnType<typeof phase>>;
  const rounds: [Phase, Phase][] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    rounds.push([
      await phase('one Redis', servers, []),
      await phase('two Redis', servers, [{ name: 'shard-b', target: { mode: 'single', url: second }, queues: ['shard-b'] }]),
    ]);
  }
  console.log(`redis shards: ${fmt(JOBS)} no-op jobs on each of 2 queues, worker concurrency ${CONCURRENCY}, one Node process (add, then drain), ${ROUNDS} rounds`);
  console.log('round  setup       add jobs/s   drain jobs/s   instance   jobs    Redis CPU ms   CPU µs/job   commands/job   scripts/job   capacity jobs/s per core');
  for (const [round, rows] of rounds.entries()) {
    for (const row of rows) {
      for (const [index, instance] of row.perInstance.entries()) {
        const head = index === 0 ? `${String(round + 1).padStart(5)}  ${row.label.padEnd(10)}  ${fmt(row.addRate).padStart(10)}   ${fmt(row.drainRate).padStart(12)}` : ' '.repeat(45);
        const cpuUsPerJob = instance.jobsHere === 0 ? 0 : (instance.cpuSeconds * 1e6) / instance.jobsHere;
        const capacity = cpuUsPerJob === 0 ? '-' : fmt(1e6 / cpuUsPerJob);
        console.log(
          `${head}   ${instance.name.padEnd(8)} ${fmt(instance.jobsHere).padStart(6)}   ${fmt(instance.cpuSeconds * 1000).padStart(12)}   ${fmt(cpuUsPerJob, 1).padStart(10)}   ${fmt(instance.jobsHere === 0 ? 0 : instance.commands / instance.jobsHere, 1).padStart(12)}   ${fmt(instance.jobsHere === 0 ? 0 : instance.scripts / instance.jobsHere, 1).padStart(11)}   ${capacity.padStart(10)}`,
        );
      }
    }
  }
  const busiest = (row: Phase) => Math.max(...row.perInstance.map((instance) => instance.cpuSeconds));
  const ceilings = rounds.map(([one, two]) => busiest(one) / busiest(two));
  const drains = rounds.map(([one, two]) => two.drainRate / one.drainRate);
  const ceiling = median(ceilings);
  const drain = median(drains);
  console.log(
    `two/one, median of ${ROUNDS} rounds: drain rate ${fmt(drain, 2)}x (rounds ${drains.map((ratio) => fmt(ratio, 2)).join(', ')}); ` +
      `the fleet's Redis ceiling (one Redis's busiest CPU over two's) about ${fmt(ceiling, 2)}x (rounds ${ceilings.map((ratio) => fmt(ratio, 2)).join(', ')})`,
  );
  const goals = goalRecorder(args.results);
  // "About twice": within a tenth of it.
  goals.record('7 scale-out', `two Redis vs one: Redis ceiling (busiest instance's CPU), median of ${ROUNDS}`, ceiling, { atLeast: 1.8 }, '×');
  goals.record('7 scale-out', `two Redis vs one: drain rate, one Node process, median of ${ROUNDS}`, drain, { report: true }, '×');
} catch (error) {
  for (const server of servers) console.error(server.output());
  throw error;
} finally {
  for (const server of servers) await server.close();
}
