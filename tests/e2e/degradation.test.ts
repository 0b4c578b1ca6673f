import { adminAuditRepository, createApiKey, openDatabase, syncStatusRepository } from '@jobfleet/db';
import { createLogger, createMetrics } from '@jobfleet/observability';
import { connectRedis, createRedisConnection, type RedisClient } from '@jobfleet/queue';
import { startWorkers, type WorkerFleet } from '@jobfleet/worker';
import { addMemoryBallast, setMemoryRatio, startRedisServer, type RedisServer } from '../support/chaos-redis';
import { reservationRequest } from '../support/fixtures';
import { startEntryPoint, waitFor } from '../support/processes';
import { startTestSystem, type TestSystem } from '../support/system';
import { startTcpProxy } from '../support/tcp-proxy';

// What workers do at each level, against a Redis of our own (its maxmemory is the test's to set)
// and, for the Postgres outage, a TCP proxy in front of the real Postgres. Ports of this file's range.
const REDIS_PORT = 47_102;
const ENV = { DEGRADATION_INTERVAL_SECONDS: '1', DEGRADATION_HOLD_SECONDS: '2', DEGRADATION_WORKERS_WINDOW_SECONDS: '30' };

let redisServer: RedisServer;
let redis: RedisClient;

beforeAll(async () => {
  redisServer = await startRedisServer(REDIS_PORT, { appendonly: false });
  redis = createRedisConnection(redisServer.url, 'producer');
  await redis.ping().catch(() => undefined);
  await addMemoryBallast(redis);
}, 30_000);
afterAll(async () => {
  redis.disconnect();
  await redisServer.close();
});

const levelOf = (fleet: WorkerFleet, level: string) =>
  waitFor(() => fleet.degradation.current().level === level, { timeoutMs: 20_000, what: `degradation level ${level}` });
const allPaused = (fleet: WorkerFleet, paused: boolean) =>
  waitFor(() => [...fleet.workers.values()].every((worker) => worker.isPaused() === paused), { timeoutMs: 5000, what: paused ? 'workers paused' : 'workers resumed' });

describe('workers at each degradation level', () => {
  let system: TestSystem;
  let fleet: WorkerFleet;
  beforeAll(async () => {
    // One calendar job at a time, so a second one waits behind the first.
    system = await startTestSystem({ label: 'e2e-degradation', env: { ...ENV, REDIS_URL: redisServer.url, CALENDAR_SYNC_CONCURRENCY: '1' } });
    if (!system.fleet) throw new Error('no workers');
    fleet = system.fleet;
  }, 60_000);
  afterAll(async () => {
    await system.close();
  });

  const post = (id: string) =>
    system.api.inject({
      method: 'POST',
      url: '/v1/jobs/calendar-sync',
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify(reservationRequest(id)),
    });
  const statusOf = async (id: string) => (await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', id))?.status;

  it('EMERGENCY (Redis memory): intake refused, workers drain, the active job finishes, the waiting one runs after recovery', async () => {
    system.calendar.setLatency(2000);
    expect((await post('drain-active')).statusCode).toBe(202);
    expect((await post('drain-waiting')).statusCode).toBe(202);
    await waitFor(async () => (await system.queues['calendar-sync'].getActiveCount()) === 1, { timeoutMs: 5000, what: 'the first job active' });

    await setMemoryRatio(redis, 0.965);
    await levelOf(fleet, 'EMERGENCY');
    await allPaused(fleet, true);
    const refused = await post('drain-refused');
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBeDefined();

    await waitFor(async () => (await statusOf('drain-active')) === 'synced', { timeoutMs: 10_000, what: 'the active job finished' });
    // Drained, not stopped: the second job stays queued while the level holds.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await statusOf('drain-waiting')).toBe('pending');
    expect(await system.queues['calendar-sync'].getActiveCount()).toBe(0);

    system.calendar.setLatency(0);
    await setMemoryRatio(redis, 0);
    await levelOf(fleet, 'NORMAL');
    await allPaused(fleet, false);
    await waitFor(async () => (await statusOf('drain-waiting')) === 'synced', { timeoutMs: 10_000, what: 'the waiting job ran after recovery' });
    expect((await post('drain-after')).statusCode).toBe(202);
  }, 60_000);

  it('MINIMAL by Redis memory: workers keep taking jobs (each one finished frees memory)', async () => {
    await setMemoryRatio(redis, 0.88);
    await levelOf(fleet, 'MINIMAL');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect([...fleet.workers.values()].some((worker) => worker.isPaused())).toBe(false);
    await setMemoryRatio(redis, 0);
    await levelOf(fleet, 'NORMAL');
  }, 30_000);

  it('pauses a worker while either its kill switch or the level says so, never resumed by the other', async () => {
    const { key: operatorKey } = await createApiKey(system.testDb.database.db, { tenantId: system.tenantId, name: 'operator', scopes: ['fleet:admin'] });
    const setSwitch = async (processingPaused: boolean) => {
      const answer = await system.api.inject({
        method: 'PUT',
        url: '/v1/admin/switches/kinds/calendar-sync',
        headers: { authorization: `Bearer ${operatorKey}`, 'content-type': 'application/json' },
        payload: { processingPaused },
      });
      expect(answer.statusCode).toBe(200);
    };
    const calendar = fleet.workers.get('calendar-sync');
    const afip = fleet.workers.get('afip-sync');
    if (!calendar || !afip) throw new Error('no workers');
    const settle = () => new Promise((resolve) => setTimeout(resolve, 1500));

    // The level drains everything; the switch turned on and off meanwhile does not resume calendar-sync.
    await setMemoryRatio(redis, 0.965);
    await levelOf(fleet, 'EMERGENCY');
    await allPaused(fleet, true);
    await setSwitch(true);
    await settle();
    await setSwitch(false);
    await settle();
    expect(calendar.isPaused()).toBe(true);

    // The switch pauses calendar-sync; the level coming back to NORMAL resumes only the others.
    await setSwitch(true);
    await setMemoryRatio(redis, 0);
    await levelOf(fleet, 'NORMAL');
    await waitFor(() => !afip.isPaused(), { timeoutMs: 5000, what: 'afip-sync resumed' });
    await settle();
    expect(calendar.isPaused()).toBe(true);
    await setSwitch(false);
    await waitFor(() => !calendar.isPaused(), { timeoutMs: 10_000, what: 'calendar-sync resumed with its switch off' });
  }, 60_000);

  it('EMERGENCY when most worker processes are gone (killed), not when they shut down on purpose', async () => {
    // Two more worker processes beside this file's: three seen, then one left.
    const startExtra = async (ids: string[]) => {
      const children = ids.map((id) => startEntryPoint('apps/worker/src/main.ts', { ...system.childEnv, WORKER_ID: id, LOG_LEVEL: 'info' }));
      await Promise.all(children.map((child) => waitFor(() => child.output().includes('workers started'), { timeoutMs: 90_000, what: 'a worker process booted' })));
      await waitFor(() => (fleet.degradation.current().signals?.workers?.established ?? 0) >= 3, { timeoutMs: 10_000, what: '3 worker processes established' });
      return children;
    };
    const killed = await startExtra(['extra-1', 'extra-2']);
    await Promise.all(killed.map((child) => child.kill('SIGKILL')));
    await levelOf(fleet, 'EMERGENCY');
    expect(fleet.degradation.current().raised).toEqual(['workersGone']);
    await allPaused(fleet, true);

    const replaced = await startExtra(['extra-3', 'extra-4']);
    await levelOf(fleet, 'NORMAL');
    await allPaused(fleet, false);
    // A scale-down: SIGTERM, the processes say they leave; the level stays.
    await Promise.all(replaced.map((child) => child.kill('SIGTERM')));
    await new Promise((resolve) => setTimeout(resolve, 5000));
    expect(fleet.degradation.current().level).toBe('NORMAL');
  }, 240_000);
});

describe('workers while Postgres is down', () => {
  it('MINIMAL: stop taking jobs, audit the transitions once Postgres is back, resume on their own', async () => {
    const base = await startTestSystem({ label: 'e2e-degradation-pg', workers: false, env: { ...ENV, REDIS_URL: redisServer.url } });
    // Only this fleet evaluates: its Postgres is behind the proxy. The API's evaluator is stopped.
    await base.api.close();
    const url = new URL(base.childEnv.DATABASE_URL ?? '');
    const proxy = await startTcpProxy({ targetHost: url.hostname, targetPort: Number(url.port || 5432) });
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    const database = openDatabase({ url: url.toString(), poolMax: 2, dataDir: '', onPoolError: () => undefined });
    const connections = connectRedis({ main: redisServer.url }, 'worker', { name: 'test-degradation-pg' });
    const fleet = await startWorkers({ config: base.config, database, redis: connections, logger: createLogger({ level: 'silent', serviceName: 'test' }), metrics: createMetrics() });
    try {
      await levelOf(fleet, 'NORMAL');
      proxy.setRefusing(true);
      proxy.resetAll();
      await levelOf(fleet, 'MINIMAL');
      expect(fleet.degradation.current().raised).toContain('postgresDown');
      await allPaused(fleet, true);
      proxy.setRefusing(false);
      await levelOf(fleet, 'NORMAL');
      await allPaused(fleet, false);
      // Written once Postgres answered again, in order.
      const rows = await waitFor(
        async () => {
          const found = await adminAuditRepository.list(base.testDb.database.db, { action: 'degradation.transition', limit: 10 });
          return found.length >= 2 ? found : undefined;
        },
        { timeoutMs: 10_000, what: 'the transitions audited' },
      );
      expect(rows.reverse().map((row) => [row.actor, row.detail.from, row.detail.to])).toEqual([
        ['system:degradation', 'NORMAL', 'MINIMAL'],
        ['system:degradation', 'MINIMAL', 'NORMAL'],
      ]);
    } finally {
      await fleet.close();
      connections.disconnect();
      await database.close();
      await proxy.close();
      await base.close();
    }
  }, 60_000);
});
