import { jest } from '@jest/globals';
import { ConfigError, DEV_ADMIN_PASSWORD, DEV_SECRETS_KEY, loadConfig, loadConfigOrExit } from './config';
import { hasHashTag, parseRedisTarget } from './redis';

const production = {
  NODE_ENV: 'production',
  ADMIN_PASSWORD: 'a-long-production-secret',
  DATABASE_URL: 'postgres://db/jobfleet',
  REDIS_URL: 'redis://redis:6379',
  SECRETS_KEYS: `prod-1:${Buffer.alloc(32, 1).toString('base64')}`,
};

function issuesOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  return [];
}

describe('loadConfig', () => {
  it('turns tracing on only with an OTLP endpoint, and off again with OTEL_SDK_DISABLED', () => {
    expect(loadConfig({}).tracing).toEqual({ tracesUrl: undefined, serviceName: undefined, sampler: 'parentbased_always_on', ratio: 1 });
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318/', OTEL_SERVICE_NAME: 'api-eu', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' };
    expect(loadConfig(on).tracing).toEqual({ tracesUrl: 'http://otel-collector:4318/v1/traces', serviceName: 'api-eu', sampler: 'parentbased_traceidratio', ratio: 0.1 });
    expect(loadConfig({ ...on, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/in' }).tracing.tracesUrl).toBe('http://traces:9999/in');
    expect(loadConfig({ ...on, OTEL_SDK_DISABLED: 'true' }).tracing.tracesUrl).toBeUndefined();
    expect(issuesOf({ OTEL_TRACES_SAMPLER_ARG: '1.5' })).toEqual([expect.stringMatching(/^OTEL_TRACES_SAMPLER_ARG: /)]);
    expect(issuesOf({ OTEL_TRACES_SAMPLER: 'jaeger_remote' })).toEqual([expect.stringMatching(/^OTEL_TRACES_SAMPLER: /)]);
  });

  it('gives development everything embedded: dev tenant, sandbox connectors, no external services', () => {
    const config = loadConfig({});
    expect(config.nodeEnv).toBe('development');
    expect(config.devTenant.enabled).toBe(true);
    expect(config.connectors).toEqual({ calendar: 'sandbox', afip: 'sandbox', s3: 'sandbox' });
    expect(config.secrets.keys).toBe(DEV_SECRETS_KEY);
    expect(config.database.url).toBeUndefined();
    expect(config.worker.queues).toBe('all');
    expect(config.api.adminPassword).toBe(DEV_ADMIN_PASSWORD);
  });

  it('reads tenant tiers from TENANT_TIERS and names what is wrong in one', () => {
    const tiers = { small: { requestsPerMinute: 10, keyRequestsPerMinute: 5, jobsPerDay: 100, maxWaitingJobs: 10, maxRunningJobs: 1 } };
    const config = loadConfig({ TENANT_TIERS: JSON.stringify(tiers), TENANT_DEFAULT_TIER: 'small' });
    expect(config.tenants.tiers).toEqual(tiers);
    expect(config.tenants.defaultTier).toBe('small');
    expect(loadConfig({}).tenants.defaultTier).toBe('standard');
    expect(issuesOf({ TENANT_TIERS: '{' })).toEqual(['TENANT_TIERS: not valid JSON']);
    expect(issuesOf({ TENANT_TIERS: JSON.stringify({ small: { ...tiers.small, maxRunningJobs: 0 } }), TENANT_DEFAULT_TIER: 'small' })).toEqual([
      expect.stringMatching(/^TENANT_TIERS\.small\.maxRunningJobs:/),
      expect.stringMatching(/^TENANT_DEFAULT_TIER:/),
    ]);
    expect(issuesOf({ TENANT_DEFAULT_TIER: 'gold' })).toEqual([expect.stringMatching(/^TENANT_DEFAULT_TIER: "gold" is not a tier/)]);
  });

  it('counts request rate limits in windows of RATE_LIMIT_WINDOW_SECONDS, a minute by default', () => {
    expect(loadConfig({}).api.rateLimitWindowSeconds).toBe(60);
    expect(loadConfig({ RATE_LIMIT_WINDOW_SECONDS: '2' }).api.rateLimitWindowSeconds).toBe(2);
    expect(issuesOf({ RATE_LIMIT_WINDOW_SECONDS: '0' })).toEqual([expect.stringMatching(/^RATE_LIMIT_WINDOW_SECONDS:/)]);
  });

  it('reads the API deadlines and the metrics token, and refuses a headers deadline past the request one', () => {
    expect(loadConfig({}).api).toMatchObject({ requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 72_000, metricsToken: undefined });
    const config = loadConfig({ API_REQUEST_TIMEOUT_MS: '2000', API_HEADERS_TIMEOUT_MS: '500', API_KEEP_ALIVE_TIMEOUT_MS: '1000', API_METRICS_TOKEN: ' scrape-me ' });
    expect(config.api).toMatchObject({ requestTimeoutMs: 2000, headersTimeoutMs: 500, keepAliveTimeoutMs: 1000, metricsToken: 'scrape-me' });
    expect(issuesOf({ API_REQUEST_TIMEOUT_MS: '1000', API_HEADERS_TIMEOUT_MS: '2000' })).toEqual(['API_HEADERS_TIMEOUT_MS: must not exceed API_REQUEST_TIMEOUT_MS']);
  });

  it('bounds a batch at 500 jobs and 2 MiB by default, never below the single body limit or past 5,000 jobs', () => {
    expect(loadConfig({}).api.batch).toEqual({ maxJobs: 500, bodyLimitBytes: 2 * 1024 * 1024 });
    expect(loadConfig({ API_BATCH_MAX_JOBS: '50', API_BATCH_BODY_LIMIT_BYTES: '300000' }).api.batch).toEqual({ maxJobs: 50, bodyLimitBytes: 300_000 });
    expect(issuesOf({ API_BATCH_MAX_JOBS: '5001' })).toEqual([expect.stringMatching(/^API_BATCH_MAX_JOBS:/)]);
    expect(issuesOf({ API_BATCH_MAX_JOBS: '0' })).toEqual([expect.stringMatching(/^API_BATCH_MAX_JOBS:/)]);
    expect(loadConfig({}).api.acceptConcurrency).toBe(4);
    expect(loadConfig({ API_ACCEPT_CONCURRENCY: '1' }).api.acceptConcurrency).toBe(1);
    for (const bad of ['0', '65', '2.5', 'many']) expect(issuesOf({ API_ACCEPT_CONCURRENCY: bad })).toEqual([expect.stringMatching(/^API_ACCEPT_CONCURRENCY:/)]);
    expect(issuesOf({ API_BODY_LIMIT_BYTES: '4096', API_BATCH_BODY_LIMIT_BYTES: '2048' })).toEqual(['API_BATCH_BODY_LIMIT_BYTES: must be at least API_BODY_LIMIT_BYTES']);
  });

  it('deprecates /v1 since the day /v2 shipped unless told otherwise, and announces a sunset only when one is set', () => {
    expect(loadConfig({}).api.v1).toEqual({ deprecatedAt: new Date('2026-12-01T00:00:00Z'), sunsetAt: undefined });
    expect(loadConfig({ API_V1_DEPRECATED_AT: 'never' }).api.v1.deprecatedAt).toBeUndefined();
    expect(loadConfig({ API_V1_DEPRECATED_AT: '2027-01-01T00:00:00Z', API_V1_SUNSET_AT: '2027-07-01T00:00:00Z' }).api.v1).toEqual({
      deprecatedAt: new Date('2027-01-01T00:00:00Z'),
      sunsetAt: new Date('2027-07-01T00:00:00Z'),
    });
    expect(issuesOf({ API_V1_DEPRECATED_AT: '2027-01-01T00:00:00Z', API_V1_SUNSET_AT: '2026-07-01T00:00:00Z' })).toEqual(['API_V1_SUNSET_AT: must not be before API_V1_DEPRECATED_AT']);
    expect(issuesOf({ API_V1_SUNSET_AT: 'next year' })).toEqual([expect.stringMatching(/^API_V1_SUNSET_AT:/)]);
  });

  it('returns a frozen object', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config.worker.perQueue['calendar-sync'])).toBe(true);
  });

  it('accepts a complete production environment', () => {
    const config = loadConfig(production);
    expect(config.connectors).toEqual({ calendar: 'live', afip: 'live', s3: 'live' });
    expect(config.devTenant.enabled).toBe(false);
  });

  it.each([
    ['ADMIN_PASSWORD', { ADMIN_PASSWORD: undefined }],
    ['ADMIN_PASSWORD', { ADMIN_PASSWORD: DEV_ADMIN_PASSWORD }],
    ['DEV_TENANT_ENABLED', { DEV_TENANT_ENABLED: 'true' }],
    ['CALENDAR_CONNECTOR', { CONNECTORS_MODE: 'sandbox' }],
    ['AFIP_CONNECTOR', { AFIP_CONNECTOR: 'sandbox' }],
    ['S3_CONNECTOR', { S3_CONNECTOR: 'sandbox' }],
    ['SECRETS_KEYS', { SECRETS_KEYS: undefined }],
    ['SECRETS_KEYS', { SECRETS_KEYS: `old:${Buffer.alloc(32, 2).toString('base64')},${DEV_SECRETS_KEY}` }],
    ['DATABASE_URL', { DATABASE_URL: undefined }],
    ['REDIS_URL', { REDIS_URL: undefined }],
  ])('refuses production with an unsafe %s', (variable, change) => {
    const env = Object.fromEntries(
      Object.entries({ ...production, ...change }).filter((e): e is [string, string] => e[1] !== undefined),
    );
    expect(issuesOf(env).some((issue) => issue.startsWith(`${variable}:`))).toBe(true);
  });

  it('applies per-queue overrides over the worker defaults', () => {
    const config = loadConfig({ WORKER_CONCURRENCY: '4', CALENDAR_SYNC_CONCURRENCY: '25', CALENDAR_SYNC_MAX_STALLED_COUNT: '5' });
    expect(config.worker.perQueue['calendar-sync']).toMatchObject({ concurrency: 25, maxStalledCount: 5 });
  });

  it('names every invalid variable', () => {
    const issues = issuesOf({ API_PORT: 'eighty', QUEUES: 'calendar-sync,nope', CALENDAR_SYNC_CONCURRENCY: '0' });
    expect(issues.join('\n')).toMatch(/API_PORT/);
    const later = issuesOf({ QUEUES: 'calendar-sync,nope', CALENDAR_SYNC_CONCURRENCY: '0' });
    expect(later.join('\n')).toMatch(/QUEUES: unknown queue\(s\) nope/);
    expect(later.join('\n')).toMatch(/CALENDAR_SYNC_CONCURRENCY/);
  });

  it('reads API_TRUST_PROXY as Fastify trustProxy: off by default, true, or addresses and CIDRs, never a hop count', () => {
    expect(loadConfig({}).api.trustProxy).toBe(false);
    expect(loadConfig({ API_TRUST_PROXY: 'true' }).api.trustProxy).toBe(true);
    expect(loadConfig({ API_TRUST_PROXY: '10.0.0.0/8, 192.168.1.7,fd00::/8,loopback' }).api.trustProxy).toBe('10.0.0.0/8,192.168.1.7,fd00::/8,loopback');
    expect(issuesOf({ API_TRUST_PROXY: '10.0.0.0/33,lb.internal' })).toEqual([expect.stringMatching(/^API_TRUST_PROXY: .*10\.0\.0\.0\/33, lb\.internal$/)]);
    expect(issuesOf({ API_TRUST_PROXY: '2' })).toEqual([expect.stringMatching(/^API_TRUST_PROXY: hop counts are not supported/)]);
  });

  it('limits failed authentications to 20 per address per 5 minutes unless told otherwise', () => {
    expect(loadConfig({}).api.authFailures).toEqual({ limit: 20, windowSeconds: 300 });
    expect(loadConfig({ AUTH_FAILURE_LIMIT: '5', AUTH_FAILURE_WINDOW_SECONDS: '60' }).api.authFailures).toEqual({ limit: 5, windowSeconds: 60 });
    expect(issuesOf({ AUTH_FAILURE_LIMIT: '0' })).toEqual([expect.stringMatching(/^AUTH_FAILURE_LIMIT:/)]);
  });

  it('chooses sandbox or live per dependency, CONNECTORS_MODE being the default', () => {
    expect(loadConfig({ CALENDAR_CONNECTOR: 'live' }).connectors).toEqual({ calendar: 'live', afip: 'sandbox', s3: 'sandbox' });
    expect(loadConfig({ CONNECTORS_MODE: 'live', AFIP_CONNECTOR: 'sandbox' }).connectors).toEqual({ calendar: 'live', afip: 'sandbox', s3: 'live' });
  });

  it('refuses embedded Redis and Postgres for api and worker processes', () => {
    const exit = jest.spyOn(process, 'exit').mockImplementation(() => {
      throw new Error('exit');
    });
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(() => loadConfigOrExit({ source: {}, role: 'service' })).toThrow('exit');
      const printed = String(stderr.mock.calls[0]?.[0]);
      expect(printed).toMatch(/REDIS_URL: required/);
      expect(printed).toMatch(/DATABASE_URL: required/);
      expect(loadConfigOrExit({ source: { REDIS_URL: 'redis://r', DATABASE_URL: 'postgres://d' }, role: 'service' }).redis.url).toBe('redis://r');
    } finally {
      exit.mockRestore();
      stderr.mockRestore();
    }
  });
});

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
