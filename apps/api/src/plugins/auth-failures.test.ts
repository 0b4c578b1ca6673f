import { QUEUE_NAMES } from '@jobfleet/kinds';
import { createLogger, createMetrics } from '@jobfleet/observability';
import { captureLogs } from '@jobfleet/observability/testing';
import { closeQueues, createQueues, connectRedis, waitUntilReady } from '@jobfleet/queue';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { TEST_REDIS_URL } from '../../../../tests/support/redis';
import { buildApi } from '../app';
import { ADMIN_PASSWORD, closedPort, startTestApi, type TestApi } from '../testing/harness';
import { clientKey } from './auth-failures';

const LIMIT = 20;
const WINDOW_SECONDS = 4;
const limits = { AUTH_FAILURE_LIMIT: String(LIMIT), AUTH_FAILURE_WINDOW_SECONDS: String(WINDOW_SECONDS) };

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** A second API replica of `api`: same config, database and Redis prefix, its own connection. */
async function replicaOf(api: TestApi): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const redis = connectRedis({ main: TEST_REDIS_URL }, 'producer', { name: 'test-auth-failures-replica' });
  await waitUntilReady(redis.main, 5000);
  const queues = createQueues({ names: QUEUE_NAMES, connection: redis.forQueue, prefix: api.config.redis.prefix, config: api.config });
  const logger = createLogger({ level: 'silent', serviceName: 'api-replica' });
  const app = await buildApi({ config: api.config, database: api.testDb.database, queues, redis, logger, metrics: createMetrics() });
  await app.ready();
  return {
    app,
    async close() {
      await app.close();
      await closeQueues(queues);
      redis.disconnect();
    },
  };
}

describe('failed-authentication limiting per client address', () => {
  let api: TestApi;
  let replica: Awaited<ReturnType<typeof replicaOf>>;
  beforeAll(async () => {
    api = await startTestApi({ label: 'auth-failures', env: limits });
    // Counting starts in Redis only once the producer connection is up.
    await api.queues['calendar-sync'].waitUntilReady();
    replica = await replicaOf(api);
  });
  afterAll(async () => {
    await replica.close();
    await api.close();
  });

  const from = (remoteAddress: string, request: InjectOptions, app = api.app) => app.inject({ ...request, remoteAddress });
  const readSync = (remoteAddress: string, key: string, app = api.app) =>
    from(remoteAddress, { method: 'GET', url: '/v1/sync/reservation/nothing', headers: { authorization: `Bearer ${key}` } }, app);
  const badKeys = async (remoteAddress: string, count: number, app = api.app) => {
    const statuses: number[] = [];
    for (let i = 0; i < count; i++) statuses.push((await readSync(remoteAddress, `jf_guess_${remoteAddress}_${i}`, app)).statusCode);
    return statuses;
  };
  const expectLockedOut = (answer: LightMyRequestResponse) => {
    expect(answer.statusCode).toBe(429);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(answer.json()).toMatchObject({ type: '/problems/too-many-failed-authentications', status: 429 });
    const retryAfter = Number(answer.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(WINDOW_SECONDS);
  };
  const count = (statuses: number[], status: number) => statuses.filter((s) => s === status).length;

  it('answers 401 to the first failures of an address, then 429 with Retry-After, even to a valid key; other addresses are untouched', async () => {
    const statuses = await badKeys('10.0.0.1', 200);
    expect(statuses.slice(0, LIMIT)).toEqual(Array<number>(LIMIT).fill(401));
    expect(count(statuses, 429)).toBe(200 - LIMIT);
    expectLockedOut(await readSync('10.0.0.1', 'jf_one_more'));
    // A valid key from the blocked address is refused alike: the answer tells nothing about the key.
    expectLockedOut(await readSync('10.0.0.1', api.keys.writer));
    // The same key from elsewhere works, on every route.
    expect((await readSync('10.0.0.2', api.keys.writer)).statusCode).toBe(404);
    expect((await from('10.0.0.2', { method: 'GET', url: '/v1/jobs/nothing', headers: { authorization: `Bearer ${api.keys.writer}` } })).statusCode).toBe(404);

    // Once the window has passed, the address may authenticate again.
    const retryAfter = Number((await readSync('10.0.0.1', api.keys.writer)).headers['retry-after']);
    await new Promise((r) => setTimeout(r, retryAfter * 1000 + 250));
    expect((await readSync('10.0.0.1', api.keys.writer)).statusCode).toBe(404);
    expect((await readSync('10.0.0.1', 'jf_wrong_again')).statusCode).toBe(401);
  });

  it('counts wrong Basic passwords on /admin/queues; no credentials at all are not counted', async () => {
    const prompts = await Promise.all(Array.from({ length: LIMIT + 5 }, () => from('10.0.1.1', { method: 'GET', url: '/admin/queues' })));
    expect(prompts.map((a) => a.statusCode)).toEqual(Array<number>(LIMIT + 5).fill(401));

    const wrong: number[] = [];
    for (let i = 0; i < LIMIT + 3; i++) {
      wrong.push((await from('10.0.1.1', { method: 'GET', url: '/admin/queues', headers: { authorization: basic('admin', `guess-${i}`) } })).statusCode);
    }
    expect(wrong).toEqual([...Array<number>(LIMIT).fill(401), 429, 429, 429]);
    expectLockedOut(await from('10.0.1.1', { method: 'GET', url: '/admin/queues', headers: { authorization: basic('admin', ADMIN_PASSWORD) } }));
    expect((await from('10.0.1.2', { method: 'GET', url: '/admin/queues', headers: { authorization: basic('admin', ADMIN_PASSWORD) } })).statusCode).toBe(200);
  });

  it("counts neither a valid key's 403s nor its successes, which do not reset the count either", async () => {
    const forbidden = await Promise.all(
      Array.from({ length: LIMIT + 5 }, () =>
        from('10.0.2.1', { method: 'POST', url: '/v1/jobs/calendar-sync', headers: { authorization: `Bearer ${api.keys.reader}`, 'content-type': 'application/json' }, payload: '{}' }),
      ),
    );
    expect(forbidden.map((a) => a.statusCode)).toEqual(Array<number>(LIMIT + 5).fill(403));

    expect(await badKeys('10.0.2.1', LIMIT - 1)).toEqual(Array<number>(LIMIT - 1).fill(401));
    for (let i = 0; i < 5; i++) expect((await readSync('10.0.2.1', api.keys.writer)).statusCode).toBe(404);
    expect(await badKeys('10.0.2.1', 2)).toEqual([401, 429]);
  });

  it('shares the count between API replicas through Redis', async () => {
    const first = await badKeys('10.0.3.1', LIMIT / 2);
    const second = await badKeys('10.0.3.1', LIMIT / 2, replica.app);
    expect([...first, ...second]).toEqual(Array<number>(LIMIT).fill(401));
    expectLockedOut(await readSync('10.0.3.1', 'jf_next', replica.app));
    // The first replica learns of the block at the address's next failure there.
    expectLockedOut(await readSync('10.0.3.1', 'jf_next', api.app));
    expectLockedOut(await readSync('10.0.3.1', api.keys.writer, api.app));
  });

  it('counts an IPv6 client per /64', async () => {
    const statuses = [...(await badKeys('2001:db8:7:1::a', LIMIT / 2)), ...(await badKeys('2001:db8:7:1:ffff:1:2:3', LIMIT / 2))];
    expect(statuses).toEqual(Array<number>(LIMIT).fill(401));
    expectLockedOut(await readSync('2001:db8:7:1::b', 'jf_next'));
    expect((await readSync('2001:db8:7:2::a', api.keys.writer)).statusCode).toBe(404);
  });

  it('ignores X-Forwarded-For unless API_TRUST_PROXY trusts the peer', async () => {
    await badKeys('10.0.4.1', LIMIT + 1);
    const spoofed = await from('10.0.4.1', { method: 'GET', url: '/v1/sync/reservation/nothing', headers: { authorization: `Bearer ${api.keys.writer}`, 'x-forwarded-for': '198.51.100.9' } });
    expectLockedOut(spoofed);
  });
});

describe('failed-authentication limiting behind a trusted proxy', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'auth-failures-proxy', env: { ...limits, API_TRUST_PROXY: '10.9.0.0/16' } });
    await api.queues['calendar-sync'].waitUntilReady();
  });
  afterAll(async () => {
    await api.close();
  });

  const viaProxy = (client: string, key: string) =>
    api.app.inject({ method: 'GET', url: '/v1/sync/reservation/nothing', remoteAddress: '10.9.0.5', headers: { authorization: `Bearer ${key}`, 'x-forwarded-for': client } });

  it('counts the client the load balancer names, not the load balancer', async () => {
    for (let i = 0; i <= LIMIT; i++) await viaProxy('203.0.113.7', `jf_guess_${i}`);
    expect((await viaProxy('203.0.113.7', api.keys.writer)).statusCode).toBe(429);
    expect((await viaProxy('203.0.113.8', api.keys.writer)).statusCode).toBe(404);
  });
});

describe('failed-authentication limiting while Redis is down', () => {
  const logs = captureLogs('warn');
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'auth-failures-down', redisUrl: `redis://127.0.0.1:${await closedPort()}`, env: { ...limits, AUTH_FAILURE_LIMIT: '3' }, logger: logs.logger });
  });
  afterAll(async () => {
    await api.close();
  });

  it('keeps valid keys working and counts failures in the process, with a warning', async () => {
    const read = (key: string) => api.app.inject({ method: 'GET', url: '/v1/sync/reservation/nothing', remoteAddress: '10.0.5.1', headers: { authorization: `Bearer ${key}` } });
    expect((await read(api.keys.writer)).statusCode).toBe(404);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await read(`jf_guess_${i}`)).statusCode);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    expect(logs.lines().some((line) => line.level === 'warn' && String(line.msg).includes('failed authentications cannot be counted in Redis'))).toBe(true);
  });
});

describe('clientKey', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002::9', '2001:db8:1:2::/64'],
    ['2001:db8::', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
  ])('counts %s as %s', (address, key) => {
    expect(clientKey(address)).toBe(key);
  });
});
