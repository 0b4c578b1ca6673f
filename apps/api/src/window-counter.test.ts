import { Redis } from 'ioredis';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../../../tests/support/redis';
import { createRedisWindowCounter } from './window-counter';

describe('fixed-window counters counted together', () => {
  const prefix = uniquePrefix('window-counter');
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL);
  });
  afterAll(async () => {
    redis.disconnect();
    await deletePrefix(prefix);
  });

  it('gives each of many concurrent requests its own position in the window, per counter', async () => {
    const counter = createRedisWindowCounter(redis, { keyPrefix: prefix, windowSeconds: 60 });
    const [a, b] = await Promise.all([
      Promise.all(Array.from({ length: 40 }, () => counter.add('a'))),
      Promise.all(Array.from({ length: 7 }, () => counter.add('b', 2))),
    ]);
    expect(a.map((count) => count.consumed).sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(b.map((count) => count.consumed).sort((x, y) => x - y)).toEqual(Array.from({ length: 7 }, (_, i) => 2 * (i + 1)));
    expect(await redis.get(`${prefix}:a`)).toBe('40');
    for (const count of [...a, ...b]) {
      expect(count.msBeforeReset).toBeGreaterThan(50_000);
      expect(count.msBeforeReset).toBeLessThanOrEqual(60_000);
    }
  });

  it('starts the window at its first count and never moves it, and gives points back', async () => {
    const counter = createRedisWindowCounter(redis, { keyPrefix: prefix, windowSeconds: 2 });
    await counter.add('w');
    await redis.pexpire(`${prefix}:w`, 500);
    // A later count keeps the window's end: PEXPIRE NX only sets the first.
    expect((await counter.add('w')).msBeforeReset).toBeLessThanOrEqual(500);
    await counter.take('w');
    expect(await redis.get(`${prefix}:w`)).toBe('1');
    await new Promise((done) => setTimeout(done, 600));
    expect(await counter.add('w')).toMatchObject({ consumed: 1 });
  });

  it('fails every request of a MULTI that Redis could not run, so the caller can fall back', async () => {
    const closed = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    const counter = createRedisWindowCounter(closed, { keyPrefix: prefix, windowSeconds: 60 });
    await expect(Promise.all([counter.add('x'), counter.add('y')])).rejects.toThrow();
    closed.disconnect();
  });
});
