/**
 * The cost of fair dispatch as the number of tenants grows: `npm run bench` (after the throughput
 * bench) or `tsx bench/fair-dispatch.bench.ts [-- tenants=100,1000,10000]`.
 *
 * For each tenant count n, n tenants hold one waiting job each, admitted through the tenant
 * capacity script (which gives each its fair-share priority) and added to BullMQ with it; a no-op
 * worker then drains them. The same n jobs added without priority (plain FIFO) are the baseline,
 * in the same run. Dispatch from BullMQ's prioritized set is O(log n): the µs per job should stay
 * flat as n grows a hundredfold, and so should the admission cost.
 */
import { randomBytes } from 'node:crypto';
import { createRedisConnection, createTenantCapacity, waitUntilReady, type RedisClient } from '@jobfleet/queue';
import { Queue, Worker } from 'bullmq';
import { args } from './args';

const TENANT_COUNTS = (args.tenants ?? '100,1000,10000').split(',').map(Number);
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379';
const CONCURRENCY = 50;
const ADD_PARALLELISM = 50;
const quotas = { jobsPerDay: 1_000_000, maxWaitingJobs: 1_000_000, maxRunningJobs: 10 };

async function inParallel(count: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: ADD_PARALLELISM }, async () => {
    while (next < count) await task(next++);
  }));
}

/** Adds n jobs (one per tenant), then drains them with a no-op worker: µs per job for each phase. */
async function run(connection: RedisClient, tenants: number, fair: boolean): Promise<{ admitUs: number; drainUs: number }> {
  const prefix = `bench-fair:${randomBytes(4).toString('hex')}`;
  const queue = new Queue('dispatch', { connection, prefix });
  const capacity = createTenantCapacity(connection, prefix);
  const addStarted = performance.now();
  await inParallel(tenants, async (i) => {
    const jobId = `t${i}-job`;
    if (!fair) {
      await queue.add('job', { tenantId: `t${i}` }, { jobId });
      return;
    }
    const admission = await capacity.admit({ kind: 'dispatch', tenantId: `t${i}`, jobId }, quotas);
    if (!admission.admitted) throw new Error('refused');
    await queue.add('job', { tenantId: `t${i}` }, { jobId, priority: admission.priority });
  });
  const admitUs = ((performance.now() - addStarted) * 1000) / tenants;

  let done = 0;
  const drainStarted = performance.now();
  const worker = new Worker('dispatch', async () => undefined, { connection, prefix, concurrency: CONCURRENCY, removeOnComplete: { count: 0 } });
  worker.on('completed', () => done++);
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (done >= tenants) {
        clearInterval(timer);
        resolve();
      }
    }, 2);
  });
  const drainUs = ((performance.now() - drainStarted) * 1000) / tenants;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  for (let cursor = '0'; ; ) {
    const [next, keys] = await connection.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length > 0) await connection.unlink(...keys);
    cursor = next;
    if (cursor === '0') break;
  }
  return { admitUs, drainUs };
}

const connection = createRedisConnection(REDIS_URL, 'worker');
if (!(await waitUntilReady(connection, 5000))) throw new Error(`Redis at ${REDIS_URL} is not reachable`);
console.log('fair dispatch: n tenants with one waiting job each (µs per job; FIFO = plain queue.add, same run)');
console.log('tenants   fair add+admit   FIFO add   fair drain   FIFO drain   drain ratio fair/FIFO');
for (const tenants of TENANT_COUNTS) {
  const fifo = await run(connection, tenants, false);
  const fair = await run(connection, tenants, true);
  console.log(
    `${String(tenants).padStart(7)}   ${fair.admitUs.toFixed(0).padStart(14)}   ${fifo.admitUs.toFixed(0).padStart(8)}   ${fair.drainUs.toFixed(0).padStart(10)}   ${fifo.drainUs.toFixed(0).padStart(10)}   ${(fair.drainUs / fifo.drainUs).toFixed(2).padStart(21)}`,
  );
}
connection.disconnect();
