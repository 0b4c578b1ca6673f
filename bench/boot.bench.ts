/**
 * Boot time and memory of the api and the worker, TypeScript through tsx against the compiled
 * build: `npm run bench:boot [-- runs=3 jobs=200]`.
 *
 * tsx      node --import tsx apps/<app>/src/main.ts (what the image ran before the build existed)
 * compiled node --enable-source-maps dist/<app>.js, from a fresh `npm run build` into a temporary
 *          folder (what the image runs now)
 *
 * Both with NODE_ENV=production and the same configuration, against the machine's Postgres (a
 * database of its own) and Redis (a key prefix of its own), the worker calling a fake Google
 * Calendar in this process. Each run starts the api, then the worker, and times each from spawn to
 * its /health/ready answering 200 (migrations, Redis, Postgres and every module loaded), with the
 * CPU time it spent until then (wall time on a shared machine is mostly waiting); RSS is
 * read from /proc after boot and again after `jobs` calendar-sync jobs went through the api
 * (10 requests in flight) and the worker synced them all. The modes alternate run by run, so
 * drift on a shared machine hits both; the table gives the median of the runs (min–max) and
 * compiled/tsx.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeCalendar } from '@jobfleet/calendar/fake';
import { createApiKey, createTenant, openDatabase } from '@jobfleet/db';
import pg from 'pg';
import { ADMIN_DATABASE_URL, databaseUrl } from '../tests/support/env';
import { reservationRequest } from '../tests/support/fixtures';
import { REPO_ROOT, startNode, waitFor, type RunningProcess } from '../tests/support/processes';
import { productionEnv, waitUntilHealthy } from '../tests/support/production';
import { deletePrefix } from '../tests/support/redis';
import { seedTenantConnections } from '../tests/support/system';
import { cpuSeconds, rssMiB } from './proc-stats';
import { args } from './args';
import { median } from './median';

const RUNS = Number(args.runs ?? 3);
const JOBS = Number(args.jobs ?? 200);
const IN_FLIGHT = 10;
const TIMEOUT_MS = 60_000;

type Mode = 'tsx' | 'compiled';
type App = 'api' | 'worker';
interface Sample {
  bootMs: number;
  /** CPU seconds (user + system) spent until ready: less swayed than wall time by other work on the machine. */
  bootCpuMs: number;
  /** MiB after boot, and after the jobs went through. */
  rssBoot: number;
  rssLoaded: number;
}

const run = randomBytes(4).toString('hex');
const tenantId = 'bench-boot';
const secretsKeys = `bench:${randomBytes(32).toString('base64')}`;
const prefix = `jfbench:boot:${run}`;
const dbName = `jobfleet_bench_boot_${run}`;
mkdirSync(join(REPO_ROOT, '.data'), { recursive: true });
// Inside the repo: node finds the bundles' external packages in its node_modules.
const buildDir = mkdtempSync(join(REPO_ROOT, '.data', 'boot-bench-'));

function entryArgs(mode: Mode, app: App): string[] {
  return mode === 'tsx' ? ['--import', 'tsx', join(REPO_ROOT, `apps/${app}/src/main.ts`)] : ['--enable-source-maps', join(buildDir, `${app}.js`)];
}

/** Starts one process and resolves once its /health/ready answers 200, with the time it took. */
async function boot(mode: Mode, app: App, env: Record<string, string>, port: number): Promise<{ child: RunningProcess; bootMs: number; bootCpuMs: number }> {
  const started = performance.now();
  const child = startNode(entryArgs(mode, app), env);
  await waitUntilHealthy(child, port, { what: `${mode} ${app}`, timeoutMs: TIMEOUT_MS, intervalMs: 20 });
  return { child, bootMs: performance.now() - started, bootCpuMs: (cpuSeconds(child.child.pid) ?? NaN) * 1000 };
}

async function stop(child: RunningProcess): Promise<void> {
  const timer = setTimeout(() => child.child.kill('SIGKILL'), 15_000);
  await child.kill('SIGTERM');
  clearTimeout(timer);
}

/** `JOBS` calendar-sync requests, `IN_FLIGHT` at a time; each must be accepted. */
async function enqueue(apiUrl: string, apiKey: string, label: string): Promise<void> {
  let next = 0;
  const sender = async () => {
    while (next < JOBS) {
      const id = `${label}-${next++}`;
      const answer = await fetch(`${apiUrl}/v1/jobs/calendar-sync`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json', 'idempotency-key': id },
        body: JSON.stringify(reservationRequest(`r-${id}`)),
      });
      if (answer.status !== 202) throw new Error(`enqueue answered ${answer.status}: ${await answer.text()}`);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, sender));
}

const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
await admin.connect();
await admin.query(`create database ${dbName}`);
const calendar = await startFakeCalendar();
const samples: Record<Mode, Record<App, Sample[]>> = { tsx: { api: [], worker: [] }, compiled: { api: [], worker: [] } };
try {
  const build = startNode([join(REPO_ROOT, 'scripts/build.ts'), '--outdir', buildDir], {});
  if ((await build.exited).code !== 0) throw new Error(`npm run build failed:\n${build.output()}`);

  const database = openDatabase({ url: databaseUrl(dbName), dataDir: '.data', poolMax: 1 });
  let apiKey: string;
  try {
    await database.migrate();
    await createTenant(database.db, { id: tenantId, name: tenantId });
    await seedTenantConnections(database.db, tenantId, { cuits: [], secretsKeys });
    ({ key: apiKey } = await createApiKey(database.db, { tenantId, name: 'bench', scopes: ['jobs:write'] }));
  } finally {
    await database.close();
  }

  const modes: readonly Mode[] = ['tsx', 'compiled'];
  for (let i = 0; i < RUNS * modes.length; i++) {
    const mode = modes[i % modes.length] ?? 'tsx';
    const { env, apiPort, workerPort } = await productionEnv({ databaseUrl: databaseUrl(dbName), prefix, secretsKeys, calendar });
    const api = await boot(mode, 'api', env, apiPort);
    const worker = await boot(mode, 'worker', env, workerPort).catch(async (error: unknown) => {
      await stop(api.child);
      throw error;
    });
    try {
      const booted = { api: rssMiB(api.child.child.pid) ?? NaN, worker: rssMiB(worker.child.child.pid) ?? NaN };
      const inserted = calendar.insertCount();
      await enqueue(`http://127.0.0.1:${apiPort}`, apiKey, `${run}-${i}`);
      await waitFor(() => calendar.insertCount() >= inserted + JOBS, { timeoutMs: TIMEOUT_MS, what: `${JOBS} events synced` });
      for (const [app, child] of [['api', api], ['worker', worker]] as const) {
        samples[mode][app].push({ bootMs: child.bootMs, bootCpuMs: child.bootCpuMs, rssBoot: booted[app], rssLoaded: rssMiB(child.child.child.pid) ?? NaN });
      }
    } finally {
      await stop(worker.child);
      await stop(api.child);
    }
    console.log(`run ${i + 1}/${RUNS * modes.length} (${mode}) done`);
  }
} finally {
  await calendar.close();
  await deletePrefix(prefix);
  await admin.query(`drop database if exists ${dbName} with (force)`);
  await admin.end();
  rmSync(buildDir, { recursive: true, force: true });
}

function figure(values: number[], unit: string): string {
  return `${Math.round(median(values))} ${unit} (${Math.round(Math.min(...values))}–${Math.round(Math.max(...values))})`;
}

console.log(`\n${RUNS} runs per mode, ${JOBS} jobs each; median (min–max); compiled/tsx of the medians`);
console.log('| process | mode | boot to /health/ready | CPU to boot | RSS after boot | RSS after the jobs |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const app of ['api', 'worker'] as const) {
  for (const mode of ['tsx', 'compiled'] as const) {
    const rows = samples[mode][app];
    const ratio = (pick: (s: Sample) => number) =>
      mode === 'compiled' ? ` ×${(median(rows.map(pick)) / median(samples.tsx[app].map(pick))).toFixed(2)}` : '';
    console.log(
      `| ${app} | ${mode} | ${figure(rows.map((s) => s.bootMs), 'ms')}${ratio((s) => s.bootMs)} | ${figure(rows.map((s) => s.bootCpuMs), 'ms')}${ratio((s) => s.bootCpuMs)} | ${figure(rows.map((s) => s.rssBoot), 'MiB')}${ratio((s) => s.rssBoot)} | ${figure(rows.map((s) => s.rssLoaded), 'MiB')}${ratio((s) => s.rssLoaded)} |`,
    );
  }
}
