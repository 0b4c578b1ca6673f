import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeCalendar, type FakeCalendar } from '@jobfleet/calendar/fake';
import { createApiKey, createTenant } from '@jobfleet/db';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver';
import { reservationRequest } from '../support/fixtures';
import { REPO_ROOT, startNode, waitFor, type RunningProcess } from '../support/processes';
import { productionEnv, waitUntilHealthy } from '../support/production';
import { deletePrefix, uniquePrefix } from '../support/redis';
import { seedTenantConnections } from '../support/system';

const TENANT = 'tenant-build';
const SECRETS_KEYS = `prod:${Buffer.alloc(32, 9).toString('base64')}`;

/** A folder holding the launcher alone, as the image does; inside the repo, so node finds node_modules. */
function launcherOnly(): string {
  mkdirSync(join(REPO_ROOT, '.data'), { recursive: true });
  const dir = mkdtempSync(join(REPO_ROOT, '.data', 'build-test-'));
  mkdirSync(join(dir, 'scripts'));
  for (const file of ['start.ts', 'entry-points.ts']) cpSync(join(REPO_ROOT, 'scripts', file), join(dir, 'scripts', file));
  return dir;
}

// `npm run build` and the compiled processes, with no TypeScript source beside them: the launcher's
// folder has no apps/ or packages/, so only dist/ can answer.
describe('production build', () => {
  const dirs: string[] = [];
  const processes: RunningProcess[] = [];
  const prefix = uniquePrefix('build');
  let testDb: TestDatabase | undefined;
  let calendar: FakeCalendar | undefined;
  let receiver: OtlpReceiver | undefined;
  afterAll(async () => {
    await receiver?.close();
    // SIGTERM: the processes shut down as deployed; one that hangs fails the test with its output.
    for (const child of processes) await child.kill('SIGTERM');
    await calendar?.close();
    await deletePrefix(prefix);
    await testDb?.drop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('builds dist/, boots the compiled api (through the launcher) and worker under NODE_ENV=production, and runs a job, traced', async () => {
    const dir = launcherOnly();
    dirs.push(dir);
    const build = startNode([join(REPO_ROOT, 'scripts/build.ts'), '--outdir', join(dir, 'dist')], {});
    expect(await build.exited).toEqual({ code: 0, signal: null });

    testDb = await createTestDatabase();
    calendar = await startFakeCalendar();
    await createTenant(testDb.database.db, { id: TENANT, name: TENANT });
    await seedTenantConnections(testDb.database.db, TENANT, { cuits: [], secretsKeys: SECRETS_KEYS });
    const { key } = await createApiKey(testDb.database.db, { tenantId: TENANT, name: 'build', scopes: ['jobs:write', 'jobs:read'] });

    receiver = await startOtlpReceiver();
    const production = await productionEnv({ databaseUrl: testDb.url, prefix, secretsKeys: SECRETS_KEYS, calendar });
    const { apiPort, workerPort } = production;
    // Tracing on: the bundle must start the SDK before it loads what the SDK instruments.
    const env = { ...production.env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint };
    const api = startNode([join(dir, 'scripts/start.ts'), 'api'], env);
    const worker = startNode(['--enable-source-maps', join(dir, 'dist/worker.js')], env);
    processes.push(api, worker);
    for (const [name, child, port] of [['api', api, apiPort], ['worker', worker, workerPort]] as const) {
      await waitUntilHealthy(child, port, { what: `the compiled ${name}`, timeoutMs: 30_000 });
    }

    const base = `http://127.0.0.1:${apiPort}`;
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'idempotency-key': 'res-build-v1' };
    const accepted = await fetch(`${base}/v1/jobs/calendar-sync`, { method: 'POST', headers, body: JSON.stringify(reservationRequest('res-build')) });
    expect(accepted.status).toBe(202);
    const synced = await waitFor(
      async () => {
        const body = (await (await fetch(`${base}/v1/reservations/res-build/sync`, { headers })).json()) as { status?: string };
        return body.status === 'synced' ? body : undefined;
      },
      { timeoutMs: 20_000, what: 'the reservation synced by the compiled worker' },
    );
    expect(synced).toMatchObject({ status: 'synced', externalRef: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(calendar.insertCount()).toBe(1);

    for (const child of [api, worker]) {
      child.child.kill('SIGTERM');
      expect(await child.exited).toEqual({ code: 0, signal: null });
    }
    // Flushed at shutdown: the request and the job's run in one trace, with the instrumented libraries' spans.
    const spans = receiver.spans();
    const request = spans.find((span) => span.service === 'jobfleet-api' && span.attributes['http.route'] === '/v1/jobs/calendar-sync');
    const run = spans.find((span) => span.service === 'jobfleet-worker' && span.name === 'process calendar-sync');
    expect(run?.traceId).toBe(request?.traceId);
    const inTrace = spans.filter((span) => span.traceId === request?.traceId);
    for (const system of ['postgresql', 'redis']) expect(inTrace.some((span) => span.attributes['db.system.name'] === system)).toBe(true);
    const calendarUrl = calendar.rootUrl;
    expect(inTrace.some((span) => String(span.attributes['url.full'] ?? '').startsWith(calendarUrl))).toBe(true);
  }, 60_000);

  it('the launcher under NODE_ENV=production without a build exits 1 and says to run npm run build', async () => {
    const dir = launcherOnly();
    dirs.push(dir);
    const launcher = startNode([join(dir, 'scripts/start.ts'), 'worker'], { NODE_ENV: 'production' });
    expect(await launcher.exited).toEqual({ code: 1, signal: null });
    expect(launcher.output()).toMatch(/dist\/worker\.js does not exist: run `npm run build` first/);
  });
});
