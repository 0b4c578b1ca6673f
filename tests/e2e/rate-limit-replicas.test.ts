import { createApiKey, tenantLimitsRepository } from '@jobfleet/db';
import { freePort } from '../support/chaos';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startEntryPoint, waitFor, type RunningProcess } from '../support/processes';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../support/redis';

// Two API processes booting side by side on a busy 2-core machine take a while.
const BOOT_TIMEOUT_MS = 90_000;
const TENANT_LIMIT = 10;
const REQUESTS = 16;

// Two real API replicas against one Redis: a tenant's limit is one count, whichever replica answers.
describe('rate limits shared by API replicas', () => {
  const prefix = uniquePrefix('rate-limit-replicas');
  const replicas: { process: RunningProcess; url: string }[] = [];
  let testDb: TestDatabase;
  let acmeKey: string;
  let globexKey: string;

  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex'] });
    const { db } = testDb.database;
    acmeKey = (await createApiKey(db, { tenantId: 'acme', name: 'admin', scopes: ['admin'] })).key;
    globexKey = (await createApiKey(db, { tenantId: 'globex', name: 'admin', scopes: ['admin'] })).key;
    await tenantLimitsRepository.update(db, 'acme', { overrides: { requestsPerMinute: TENANT_LIMIT } });
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const child = startEntryPoint('apps/api/src/main.ts', {
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        DATABASE_URL: testDb.url,
        REDIS_URL: TEST_REDIS_URL,
        QUEUE_PREFIX: prefix,
        DEV_TENANT_ENABLED: 'false',
        API_HOST: '127.0.0.1',
        API_PORT: String(port),
      });
      replicas.push({ process: child, url: `http://127.0.0.1:${port}` });
    }
    for (const { process: child, url } of replicas) {
      await waitFor(
        async () => {
          if (child.child.exitCode !== null) throw new Error(`an API replica exited:\n${child.output()}`);
          return fetch(`${url}/health/ready`).then((r) => r.ok, () => false);
        },
        { timeoutMs: BOOT_TIMEOUT_MS, what: `the API on ${url}`, intervalMs: 200 },
      );
    }
  }, BOOT_TIMEOUT_MS * 2);

  afterAll(async () => {
    await Promise.all(replicas.map(({ process: child }) => child.kill('SIGKILL')));
    await deletePrefix(prefix);
    await testDb.drop();
  });

  const read = (replica: number, tenantId: string, key: string) =>
    fetch(`${replicas[replica % 2]?.url ?? ''}/v1/admin/tenants/${tenantId}/limits`, { headers: { authorization: `Bearer ${key}` } });

  it('serves exactly the tenant limit across both replicas, then 429 with Retry-After and the RateLimit fields', async () => {
    // All at once, alternating replicas: the count is atomic in Redis, not per process.
    const answers = await Promise.all(Array.from({ length: REQUESTS }, (_, i) => read(i, 'acme', acmeKey)));
    const served = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status !== 200);
    expect(served).toHaveLength(TENANT_LIMIT);
    expect(refused.map((a) => a.status)).toEqual(Array.from({ length: REQUESTS - TENANT_LIMIT }, () => 429));

    // Each served request saw its own place in the one count: remaining 9 down to 0, none twice.
    const remaining = served.map((a) => Number(/^"tenant";r=(\d+);t=\d+, "key";r=\d+;t=\d+$/.exec(a.headers.get('ratelimit') ?? '')?.[1]));
    expect(remaining.sort((a, b) => a - b)).toEqual(Array.from({ length: TENANT_LIMIT }, (_, i) => i));
    for (const answer of refused) {
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const retryAfter = Number(answer.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(answer.headers.get('ratelimit-policy')).toBe(`"tenant";q=${TENANT_LIMIT};w=60, "key";q=3000;w=60`);
      expect(answer.headers.get('ratelimit')).toMatch(/^"tenant";r=0;t=\d+, "key";r=\d+;t=\d+$/);
      expect(await answer.json()).toMatchObject({ type: '/problems/rate-limited', status: 429, detail: expect.stringContaining('the tenant limit') });
    }
  });

  it("reports each replica's own Postgres pool and the Redis memory at scrape time", async () => {
    const metrics = await (await fetch(`${replicas[0]?.url ?? ''}/metrics`)).text();
    expect(metrics).toMatch(/^postgres_pool_max_connections 10$/m);
    expect(metrics).toMatch(/^postgres_pool_connections\{state="in-use"\} \d+$/m);
    expect(metrics).toMatch(/^postgres_pool_connections\{state="idle"\} \d+$/m);
    expect(metrics).toMatch(/^postgres_pool_waiting_requests 0$/m);
    expect(metrics).toMatch(/^redis_memory_used_bytes\{redis="main"\} [1-9]\d*$/m);
  });

  it('leaves another tenant unaffected on both replicas', async () => {
    // The refusals were the tenant limit's, so they were not counted against the key: it shows the 10 served.
    const limited = await read(0, 'acme', acmeKey);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('ratelimit')).toMatch(new RegExp(`^"tenant";r=0;t=\\d+, "key";r=${3000 - TENANT_LIMIT};t=\\d+$`));
    for (const replica of [0, 1]) {
      const answer = await read(replica, 'globex', globexKey);
      expect(answer.status).toBe(200);
      expect(answer.headers.get('ratelimit')).toMatch(/^"tenant";r=\d+;t=\d+, "key";r=\d+;t=\d+$/);
    }
  });
});
