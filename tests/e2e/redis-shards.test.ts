import { syncStatusRepository } from '@jobfleet/db';
import { metricValue } from '@jobfleet/observability/testing';
import { createRedisConnection, type RedisClient } from '@jobfleet/queue';
import { startRedisServer, type RedisServer } from '../support/chaos-redis';
import { invoiceRequest, reservationRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { scanKeys, TEST_REDIS_URL } from '../support/redis';
import { startTestSystem, type TestSystem } from '../support/system';

// REDIS_QUEUE_URLS: calendar-sync on one extra Redis, afip-sync on another, the rest (backup, and
// the fleet-wide state) on the main one. Each queue's jobs and tenant counters live on its own.
describe('queues spread over several Redis instances (REDIS_QUEUE_URLS)', () => {
  let calendarRedis: RedisServer;
  let afipRedis: RedisServer;
  let system: TestSystem;
  const clients: RedisClient[] = [];
  const keysOn = async (url: string, pattern: string) => {
    const client = createRedisConnection(url, 'worker', { name: 'shards-test' });
    clients.push(client);
    return scanKeys(client, pattern);
  };

  beforeAll(async () => {
    calendarRedis = await startRedisServer(7211);
    afipRedis = await startRedisServer(7212);
    system = await startTestSystem({
      label: 'e2e-shards',
      env: { REDIS_QUEUE_URLS: JSON.stringify({ 'calendar-sync': calendarRedis.url, 'afip-sync': afipRedis.url }) },
    });
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await system.close();
    await calendarRedis.close();
    await afipRedis.close();
  });

  const post = (kind: string, body: unknown) =>
    system.api.inject({
      method: 'POST',
      url: `/v1/jobs/${kind}`,
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
  const synced = (kind: string, entityId: string) =>
    waitFor(async () => (await syncStatusRepository.get(system.testDb.database.db, system.tenantId, kind, entityId))?.status === 'synced', {
      timeoutMs: 30_000,
      what: `${kind} ${entityId} synced`,
    });
  const ready = async () => {
    const answer = await system.api.inject('/health/ready');
    return { status: answer.statusCode, checks: (answer.json<{ checks: Record<string, { status: string }> }>()).checks };
  };

  it('puts each kind on its own Redis, its jobs and its quota counters; both complete; fleet-wide state stays on main', async () => {
    const [calendarJob, afipJob] = await Promise.all([post('calendar-sync', reservationRequest('res-shard')), post('afip-sync', invoiceRequest('inv-shard'))]);
    expect([calendarJob.statusCode, afipJob.statusCode]).toEqual([202, 202]);
    await Promise.all([synced('reservation', 'res-shard'), synced('afip-invoice', 'inv-shard')]);

    const prefix = system.config.redis.prefix;
    const calendarJobId = calendarJob.json<{ jobId: string }>().jobId;
    const afipJobId = afipJob.json<{ jobId: string }>().jobId;
    // The job hashes (completed jobs are kept) and the tenant's counters are where their queue is.
    expect(await keysOn(calendarRedis.url, `${prefix}:calendar-sync:${calendarJobId}`)).toHaveLength(1);
    expect(await keysOn(calendarRedis.url, `${prefix}:tenancy:calendar-sync:*`)).not.toEqual([]);
    expect(await keysOn(afipRedis.url, `${prefix}:afip-sync:${afipJobId}`)).toHaveLength(1);
    expect(await keysOn(afipRedis.url, `${prefix}:tenancy:afip-sync:*`)).not.toEqual([]);
    // And nowhere else: no queue's key is on another's instance or on main.
    expect(await keysOn(calendarRedis.url, `${prefix}:afip-sync:*`)).toEqual([]);
    expect(await keysOn(afipRedis.url, `${prefix}:calendar-sync:*`)).toEqual([]);
    expect(await keysOn(TEST_REDIS_URL, `${prefix}:calendar-sync:*`)).toEqual([]);
    expect(await keysOn(TEST_REDIS_URL, `${prefix}:afip-sync:*`)).toEqual([]);
    expect(await keysOn(TEST_REDIS_URL, `${prefix}:tenancy:*`)).toEqual([]);
    // The WSAA ticket cache and the numbering lock's fence are the fleet's: on main.
    expect(await keysOn(TEST_REDIS_URL, `${prefix}:afip-wsaa:ticket:*`)).toHaveLength(1);
    expect(await keysOn(TEST_REDIS_URL, `${prefix}:lock:*`)).not.toEqual([]);
    expect(await keysOn(afipRedis.url, `${prefix}:afip-wsaa:*`)).toEqual([]);
    expect(await keysOn(afipRedis.url, `${prefix}:lock:*`)).toEqual([]);

    // The job routes read each job from its own instance.
    const read = await system.api.inject({ url: `/v1/jobs/${afipJobId}`, headers: { authorization: `Bearer ${system.apiKey}` } });
    expect(read.json()).toMatchObject({ id: afipJobId, queue: 'afip-sync', state: 'completed' });
    // Bull Board lists every queue, whichever instance holds it.
    const board = await system.api.inject({ url: '/admin/queues/api/queues', headers: { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` } });
    expect(board.statusCode).toBe(200);
    const shown = board.json<{ queues: { name: string }[] }>().queues.map((queue) => queue.name);
    expect(shown.sort()).toEqual(['afip-sync', 'backup', 'calendar-sync']);
  });

  it('readiness checks every instance and fails while any is down; the connection gauge names it', async () => {
    expect(await ready()).toEqual({
      status: 200,
      checks: { redis: { status: 'ok' }, 'redis:calendar-sync': { status: 'ok' }, 'redis:afip-sync': { status: 'ok' }, database: { status: 'ok' } },
    });
    expect(await metricValue(system.metrics, 'redis_connection_up', { redis: 'afip-sync' })).toBe(1);

    await afipRedis.stop('crash');
    try {
      const down = await waitFor(async () => ((await ready()).status === 503 ? ready() : undefined), { timeoutMs: 10_000, what: 'readiness 503' });
      expect(down.checks).toMatchObject({ redis: { status: 'ok' }, 'redis:calendar-sync': { status: 'ok' }, 'redis:afip-sync': { status: 'failed' } });
      expect(await metricValue(system.metrics, 'redis_connection_up', { redis: 'afip-sync' })).toBe(0);
      expect(await metricValue(system.metrics, 'redis_connection_up', { redis: 'calendar-sync' })).toBe(1);
      // Enqueueing the kind whose Redis is down is refused at once; the other kind is still accepted.
      expect((await post('afip-sync', invoiceRequest('inv-while-down'))).statusCode).toBe(503);
      expect((await post('calendar-sync', reservationRequest('res-while-down'))).statusCode).toBe(202);
    } finally {
      await afipRedis.start();
    }
    await waitFor(async () => (await ready()).status === 200, { timeoutMs: 15_000, what: 'readiness back to 200' });
    await synced('reservation', 'res-while-down');
  });
});
