import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@jobfleet/observability';
import { Redis } from 'ioredis';
import { TEST_REDIS_URL } from '../../../tests/support/redis';
import { resolveRedis } from './embedded-redis';

const logger = createLogger({ level: 'silent', serviceName: 'test' });

describe('resolveRedis (npm start)', () => {
  it('uses REDIS_URL when it is set, without probing', async () => {
    const resolved = await resolveRedis({ url: 'redis://example.invalid:6379', dataDir: '.data', logger });
    expect(resolved).toMatchObject({ url: 'redis://example.invalid:6379', source: 'REDIS_URL' });
  });

  it('uses a Redis answering on the local default port', async () => {
    const resolved = await resolveRedis({ url: undefined, dataDir: '.data', logger, localDefault: TEST_REDIS_URL });
    expect(resolved.source).toBe('local default');
  });

  it('starts redis-server from PATH with AOF under the data dir when nothing answers, and stops it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'jobfleet-redis-'));
    const resolved = await resolveRedis({ url: undefined, dataDir, logger, localDefault: 'redis://127.0.0.1:1' });
    try {
      expect(resolved.source).toBe('started redis-server');
      const client = new Redis(resolved.url);
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await client.config('GET', 'dir')).toEqual(['dir', join(dataDir, 'redis')]);
      client.disconnect();
    } finally {
      await resolved.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
    const after = new Redis(resolved.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    await expect(after.connect()).rejects.toThrow();
    after.disconnect();
  });
});
