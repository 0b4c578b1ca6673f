import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedisConnection, waitUntilReady, type RedisClient } from '@jobfleet/queue';
import { Cluster } from 'ioredis';
import { reservationRequest } from '../support/fixtures';
import { startEntryPoint, waitFor, type RunningProcess } from '../support/processes';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../support/redis';

/** Subscribers of `channel` over every server (a cluster's subscriber sits on one of its masters). */
async function subscribers(redis: RedisClient, channel: string): Promise<number> {
  const servers = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const counts = await Promise.all(servers.map(async (server) => ((await server.call('PUBSUB', 'NUMSUB', channel)) as [string, number])[1]));
  return counts.reduce((sum, count) => sum + count, 0);
}

// `npm start`: one process with API, workers, embedded PGlite and the sandbox Calendar.
describe('standalone start', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'jobfleet-standalone-'));
  const prefix = uniquePrefix('standalone');
  let app: RunningProcess | undefined; // unset when the test failed before starting it
  afterAll(async () => {
    await app?.kill('SIGKILL');
    await deletePrefix(prefix);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves the dev key, syncs a reservation end to end on PGlite, and exits cleanly on SIGTERM', async () => {
    const started = startEntryPoint('apps/standalone/src/main.ts', {
      DATA_DIR: dataDir,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix,
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      LOG_LEVEL: 'warn',
    });
    app = started;
    const base = await waitFor(() => started.output().match(/API {10}(http:\/\/127\.0\.0\.1:\d+)\/v1/)?.[1], {
      timeoutMs: 60_000,
      what: `the start banner\n${started.output()}`,
    });
    // API and workers share one fleet-controls cache: one subscriber to its channel, not one per part.
    const redis = createRedisConnection(TEST_REDIS_URL, 'producer', { name: 'standalone-test' });
    try {
      await waitUntilReady(redis, 5000);
      expect(await subscribers(redis, `${prefix}:fleet-controls`)).toBe(1);
    } finally {
      redis.disconnect();
    }
    const key = started.output().match(/Dev API key {2}(\S+)/)?.[1];
    expect(key).toBeDefined();
    const headers = { authorization: `Bearer ${key!}`, 'content-type': 'application/json' };

    const accepted = await fetch(`${base}/v1/jobs/calendar-sync`, {
      method: 'POST',
      headers,
      body: JSON.stringify(reservationRequest('res-standalone')),
    });
    expect(accepted.status).toBe(202);
    const synced = await waitFor(
      async () => {
        const answer = await fetch(`${base}/v1/reservations/res-standalone/sync`, { headers });
        const body = (await answer.json()) as { status?: string; externalRef?: string };
        return body.status === 'synced' ? body : undefined;
      },
      { timeoutMs: 20_000, what: 'reservation synced' },
    );
    expect(synced.externalRef).toMatch(/^[0-9a-f]{64}$/);
    // The scrape-time gauges main wires: queues, Redis memory; no pool on PGlite.
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^queue_oldest_waiting_job_age_seconds\{queue="calendar-sync"\} 0$/m);
    expect(metrics).toMatch(/^redis_memory_used_bytes\{redis="main"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^redis_memory_max_bytes\{redis="main"\} \d+$/m);
    expect(metrics).not.toMatch(/^postgres_pool_connections\{/m);

    started.child.kill('SIGTERM');
    const { code } = await started.exited;
    expect(code).toBe(0);
  }, 90_000);
});
