import { ConfigError, loadConfig } from './config';
import { hasHashTag, parseRedisTarget } from './redis';

function issuesOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  return [];
}

describe('Redis configuration', () => {
  it('reads a cluster URL as its seed nodes, credentials and TLS', () => {
    expect(parseRedisTarget('redis-cluster://127.0.0.1:7201,127.0.0.1:7202,[::1]:7203')).toEqual({
      mode: 'cluster',
      nodes: [
        { host: '127.0.0.1', port: 7201 },
        { host: '127.0.0.1', port: 7202 },
        { host: '::1', port: 7203 },
      ],
      username: undefined,
      password: undefined,
      tls: false,
    });
    expect(parseRedisTarget('rediss-cluster://app:p%40ss@redis-1:6379,redis-2:6379/')).toMatchObject({ username: 'app', password: 'p@ss', tls: true, nodes: [{ host: 'redis-1' }, { host: 'redis-2' }] });
    expect(parseRedisTarget('redis://redis:6379/2')).toEqual({ mode: 'single', url: 'redis://redis:6379/2' });
  });

  it('knows a hash tag as Redis does: the part between the first { and the next }, when not empty', () => {
    expect(hasHashTag('{jobfleet}')).toBe(true);
    expect(hasHashTag('prod:{jobfleet}:eu')).toBe(true);
    expect(hasHashTag('jobfleet')).toBe(false);
    expect(hasHashTag('{}jobfleet')).toBe(false);
    expect(hasHashTag('jobfleet}{')).toBe(false);
  });

  it('refuses a cluster without a hash-tagged prefix, and bad URLs, naming the variable', () => {
    const cluster = 'redis-cluster://10.0.0.1:6379,10.0.0.2:6379';
    expect(loadConfig({ REDIS_URL: cluster, QUEUE_PREFIX: '{jobfleet}' }).redis.main).toMatchObject({ mode: 'cluster' });
    expect(issuesOf({ REDIS_URL: cluster })).toEqual([expect.stringMatching(/^QUEUE_PREFIX: "jobfleet" has no hash tag.*use e\.g\. \{jobfleet\}$/)]);
    expect(issuesOf({ REDIS_URL: 'redis://r', REDIS_QUEUE_URLS: JSON.stringify({ 'afip-sync': cluster }) })).toEqual([expect.stringMatching(/^QUEUE_PREFIX: .*no hash tag/)]);
    expect(issuesOf({ REDIS_URL: 'memcached://r:11211' })).toEqual(['REDIS_URL: must start with redis://, rediss://, redis-cluster:// or rediss-cluster://']);
    expect(issuesOf({ REDIS_URL: 'redis-cluster://10.0.0.1' })).toEqual(['REDIS_URL: cluster node "10.0.0.1" is not host:port']);
  });

  it('groups REDIS_QUEUE_URLS into instances named by their queues; a queue on the main URL stays on main', () => {
    const redis = loadConfig({
      REDIS_URL: 'redis://main:6379',
      REDIS_QUEUE_URLS: JSON.stringify({ 'afip-sync': 'redis://second:6379', backup: 'redis://second:6379', 'calendar-sync': 'redis://main:6379' }),
    }).redis;
    expect(redis.queueInstances).toEqual([{ name: 'afip-sync+backup', target: { mode: 'single', url: 'redis://second:6379' }, queues: ['afip-sync', 'backup'] }]);
  });

  it('refuses REDIS_QUEUE_URLS that is not JSON, names an unknown queue or a bad URL, or comes without REDIS_URL', () => {
    expect(issuesOf({ REDIS_URL: 'redis://r', REDIS_QUEUE_URLS: '{' })).toEqual(['REDIS_QUEUE_URLS: not valid JSON (a JSON object of queue name to Redis URL)']);
    expect(issuesOf({ REDIS_URL: 'redis://r', REDIS_QUEUE_URLS: JSON.stringify({ invoices: 'redis://x:6379' }) })).toEqual([
      'REDIS_QUEUE_URLS.invoices: not a queue (known: calendar-sync, afip-sync, backup)',
    ]);
    expect(issuesOf({ REDIS_URL: 'redis://r', REDIS_QUEUE_URLS: JSON.stringify({ backup: 'http://x' }) })).toEqual([
      'REDIS_QUEUE_URLS.backup: must start with redis://, rediss://, redis-cluster:// or rediss-cluster://',
    ]);
    expect(issuesOf({ REDIS_QUEUE_URLS: JSON.stringify({ backup: 'redis://x:6379' }) })).toEqual([
      'REDIS_QUEUE_URLS: needs REDIS_URL (the queues not listed, and the fleet-wide state, live there)',
    ]);
  });
});
