/**
 * AFIP numbering of one voucher series, one voucher per FECAESolicitar against lots, in the same
 * run: `tsx bench/afip-numbering.bench.ts [-- off=60 on=300 latency=200 concurrency=100]`.
 *
 * Both rows run jobfleet's afip-sync kind through its whole worker (lock, Postgres rows, sync
 * status) against the AFIP simulator, which answers every call after `latency` ms. Each row adds
 * its invoices first (one series, a point of sale of its own) and times how long the worker takes
 * to authorise them all.
 *
 * one per request   AFIP_BATCH_MAX_VOUCHERS=1: one FECAESolicitar per invoice (the last number
 *                   is kept in Postgres, so no FECompUltimoAutorizado per invoice either).
 * lots              AFIP_BATCH_MAX_VOUCHERS unset: the waiting invoices of the series go together,
 *                   up to FECompTotXRequest's RegXReq (and the tenant's running-job slots).
 */
import { randomBytes } from 'node:crypto';
import { startAfipSimulator, createTestCertificate, type AfipSimulator } from '@jobfleet/afip/simulator';
import { loadConfig, type Config } from '@jobfleet/config';
import { afipIssuerRepository, createTenant, openDatabase } from '@jobfleet/db';
import { JOB_KINDS } from '@jobfleet/kinds';
import { createLogger, createMetrics } from '@jobfleet/observability';
import { connectRedis, waitUntilReady } from '@jobfleet/queue';
import { parseKeyring } from '@jobfleet/secrets';
import { startWorkers } from '@jobfleet/worker';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createBenchDatabase } from './bench-database';
import { goalRecorder } from './goals';
import { args } from './args';

const OFF_INVOICES = Number(args.off ?? 60);
const ON_INVOICES = Number(args.on ?? 300);
const LATENCY_MS = Number(args.latency ?? 200);
const CONCURRENCY = Number(args.concurrency ?? 100);
const REDIS_URL = args.redis ?? 'redis://127.0.0.1:6379';
const ADMIN_DB = args.db ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const TENANT = 'bench';
const CUIT = 30712345671;
const SECRETS_KEYS = `bench:${Buffer.alloc(32, 9).toString('base64')}`;
// Bounds every wait: a row that cannot finish in this time fails the bench instead of hanging it.
const ROW_DEADLINE_MS = 120_000;

const today = new Date(Date.now() - 3 * 3600_000).toISOString().slice(0, 10);
const invoice = (ptoVta: number, i: number) => ({
  invoiceId: `inv-${ptoVta}-${i}`,
  cuit: CUIT,
  ptoVta,
  cbteTipo: 1,
  concept: 1,
  docType: 80,
  docNumber: 20123456786,
  date: today,
  amounts: { total: 1210, untaxed: 0, net: 1000, exempt: 0, vat: 210, otherTaxes: 0 },
  currency: 'PES',
  exchangeRate: 1,
  vat: [{ rateId: 5, base: 1000, amount: 210 }],
});

/** Invoices per second of the afip-sync worker authorising `count` invoices of the series (CUIT, ptoVta, 1). */
async function run(prefix: string, databaseUrl: string, afip: AfipSimulator, ptoVta: number, count: number, batchMax: string | undefined) {
  const config: Config = loadConfig({
    LOG_LEVEL: 'silent',
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    QUEUE_PREFIX: prefix,
    CONNECTORS_MODE: 'live',
    AFIP_WSAA_URL: afip.wsaaUrl,
    AFIP_WSFE_URL: afip.wsfeUrl,
    SECRETS_KEYS,
    AFIP_SYNC_CONCURRENCY: String(CONCURRENCY),
    // One tenant fills the worker here: its running-job slots must not be what bounds a lot.
    TENANT_TIERS: JSON.stringify({ bench: { requestsPerMinute: 1e6, keyRequestsPerMinute: 1e6, jobsPerDay: 1e9, maxWaitingJobs: 1e6, maxRunningJobs: CONCURRENCY } }),
    TENANT_DEFAULT_TIER: 'bench',
    ...(batchMax === undefined ? {} : { AFIP_BATCH_MAX_VOUCHERS: batchMax }),
  });
  const database = openDatabase({ ...config.database, url: databaseUrl, poolMax: 20 });
  const redis = connectRedis({ main: REDIS_URL }, 'worker');
  await waitUntilReady(redis.main, 5000);
  const queue = new Queue('afip-sync', { connection: redis.forQueue('afip-sync'), prefix });
  await queue.addBulk(
    Array.from({ length: count }, (_, i) => ({
      name: 'authorize',
      data: { tenantId: TENANT, idempotencyKey: `invoice:${ptoVta}-${i}`, request: invoice(ptoVta, i), enqueuedAt: new Date().toISOString() },
      opts: { jobId: `${TENANT}-${ptoVta}-${i}`, priority: 1 },
    })),
  );
  const afipKind = JOB_KINDS.filter((kind) => kind.name === 'afip-sync');
  const requestsBefore = afip.requestCount('FECAESolicitar');
  const fleet = await startWorkers({ config, database, redis, logger: createLogger({ level: 'silent', serviceName: 'bench' }), metrics: createMetrics(), kinds: afipKind });
  let completed = 0;
  let failure: Error | undefined;
  const worker = fleet.workers.get('afip-sync');
  worker?.on('completed', () => completed++);
  worker?.on('failed', (_job, error) => (failure ??= error));
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (completed >= count || failure !== undefined || performance.now() - started > ROW_DEADLINE_MS) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  const seconds = (performance.now() - started) / 1000;
  await fleet.close();
  await queue.obliterate({ force: true });
  await queue.close();
  redis.disconnect();
  await database.close();
  if (failure) throw failure;
  if (completed < count) throw new Error(`only ${completed} of ${count} invoices authorised within ${ROW_DEADLINE_MS} ms`);
  const numbers = afip.authorized(CUIT, ptoVta, 1).map((v) => v.cbteNro);
  if (numbers.length !== count || numbers.some((n, i) => n !== i + 1)) throw new Error(`series ${ptoVta}: AFIP holds ${numbers.length} vouchers, not 1..${count}`);
  return { rate: count / seconds, requests: afip.requestCount('FECAESolicitar') - requestsBefore };
}

/** Deletes what the rows left under `prefix` (ticket cache, lock fences). */
async function removeKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 500 }) as AsyncIterable<string[]>) {
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
}

const benchDb = await createBenchDatabase(ADMIN_DB, async (db) => {
  await createTenant(db, { id: TENANT, name: TENANT });
  await afipIssuerRepository.add(db, parseKeyring(SECRETS_KEYS), { tenantId: TENANT, cuit: CUIT, ...createTestCertificate({ cuit: CUIT }) });
});
const afip = await startAfipSimulator();
try {
  afip.setLatency(LATENCY_MS);

  // One key prefix for both rows: the WSAA ticket cached in Redis by the first serves the second
  // (WSAA refuses a second login while a ticket is valid).
  const prefix = `jfbench:${randomBytes(3).toString('hex')}`;
  const off = await run(prefix, benchDb.url, afip, 1, OFF_INVOICES, '1');
  const on = await run(prefix, benchDb.url, afip, 2, ON_INVOICES, undefined);
  await removeKeys(prefix);
  console.log(`afip numbering, one series: every AFIP call answered after ${LATENCY_MS} ms, worker concurrency ${CONCURRENCY}`);
  console.log('mode                 invoices   invoices/s   FECAESolicitar   ratio');
  const row = (name: string, count: number, result: { rate: number; requests: number }) =>
    console.log(`${name.padEnd(20)} ${String(count).padStart(8)}   ${result.rate.toFixed(1).padStart(10)}   ${String(result.requests).padStart(14)}   ${(result.rate / off.rate).toFixed(1)}`);
  row('one per request', OFF_INVOICES, off);
  row('lots', ON_INVOICES, on);
  goalRecorder(args.results).record('6 AFIP numbering', `invoices/s, lots vs one per request, ${LATENCY_MS} ms AFIP`, on.rate / off.rate, { atLeast: 20 }, '×', 1);
} finally {
  await afip.close();
  await benchDb.drop();
}
