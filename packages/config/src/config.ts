import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { z } from 'zod';
import { parseBackupConfig, type BackupConfig } from './backup';
import { degradationEnvShape, parseDegradationConfig, type DegradationConfig } from './degradation';
import { parseRedisConfig, type RedisConfig, type RedisTarget } from './redis';
import { DEFAULT_TENANT_TIERS, TIER_NAME, tiersSchema, type TenantTiers } from './tenant-limits';

/**
 * The job kinds QUEUES may name and <QUEUE>_* variables configure. `@jobfleet/kinds` owns the
 * registry; this list is repeated here only because config depends on nothing of ours (a test
 * keeps them equal).
 */
const WORKER_QUEUES = ['calendar-sync', 'afip-sync', 'backup'] as const;
type QueueName = (typeof WORKER_QUEUES)[number];

/** Development defaults. Production refuses to start while any of them is in use. */
export const DEV_TENANT_ID = 'dev';
export const DEV_API_KEY = 'jf_dev_local_only_key';
export const DEV_ADMIN_PASSWORD = 'admin';
/**
 * The development key that encrypts tenant connection secrets (32 bytes, base64): public, so
 * anything sealed with it is readable by anyone. Production refuses it.
 */
export const DEV_SECRETS_KEY = 'dev:ZGV2ZWxvcG1lbnQtb25seS1zZWNyZXRzLWtleS0zMiE=';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly issues: readonly string[],
  ) {
    super(`${message}:\n  - ${issues.join('\n  - ')}`);
  }
}

/** The OTEL_TRACES_SAMPLER values of the OpenTelemetry spec that need no extension. */
const TRACES_SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
export type TracesSampler = (typeof TRACES_SAMPLERS)[number];

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number) => z.coerce.number().int().min(min);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/**
 * Fastify's `trustProxy`: whom to believe about the client's address (X-Forwarded-For). A list is
 * kept as Fastify takes it, comma-separated. Hop counts are refused: Fastify 5.12 ignores them
 * (it trusts no one then), because a count cannot tell the proxy from a client that sends the header.
 */
type TrustProxy = boolean | string;
// proxy-addr's names for well-known ranges, accepted beside addresses and CIDRs.
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
function isProxyAddress(entry: string): boolean {
  if (PROXY_RANGE_NAMES.has(entry)) return true;
  const [address = '', bits, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}
const trustProxy = z
  .string()
  .trim()
  .transform((raw, ctx): TrustProxy => {
    if (raw === '' || raw === 'false') return false;
    if (raw === 'true') return true;
    if (/^\d+$/.test(raw)) {
      ctx.addIssue({ code: 'custom', message: 'hop counts are not supported (Fastify ignores them); name the proxies: addresses or CIDRs' });
      return false;
    }
    const entries = raw.split(',').map((entry) => entry.trim());
    const invalid = entries.filter((entry) => !isProxyAddress(entry));
    if (invalid.length > 0) ctx.addIssue({ code: 'custom', message: `not an address, CIDR, loopback, linklocal or uniquelocal: ${invalid.join(', ')}` });
    return entries.join(',');
  });

const envSchema = z.object({
  // development | test | production; production turns on the safety checks below.
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  // pino level.
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Name used in logs and metrics (service label).
  SERVICE_NAME: z.string().min(1).default('jobfleet'),

  // OpenTelemetry traces (the standard OTEL_* variables): off unless an OTLP endpoint is set.
  // true: no tracing whatever else is set.
  OTEL_SDK_DISABLED: bool.default(false),
  // service.name of the spans; default <SERVICE_NAME>-api / -worker (standalone: SERVICE_NAME).
  OTEL_SERVICE_NAME: optionalString,
  // OTLP/HTTP base URL (a collector's :4318); spans go to <it>/v1/traces.
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalString.pipe(z.url().optional()),
  // The full traces URL, overriding the base one.
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optionalString.pipe(z.url().optional()),
  // Which traces are kept: the spec's sampler names.
  OTEL_TRACES_SAMPLER: z.enum(TRACES_SAMPLERS).default('parentbased_always_on'),
  // The ratio of the traceidratio samplers, 0 to 1.
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).optional(),

  // Redis for queues, rate limits and caches: redis://, rediss://, or redis-cluster://host:port,host:port
  // (a Redis Cluster; QUEUE_PREFIX must then be hash-tagged). Unset: the standalone start finds or starts one.
  REDIS_URL: optionalString,
  // Queues on a Redis of their own (JSON object: queue name -> Redis URL); the others stay on REDIS_URL.
  REDIS_QUEUE_URLS: optionalString,
  // Key prefix for every key of ours and BullMQ's; hash-tag it (e.g. {jobfleet}) on Redis Cluster.
  QUEUE_PREFIX: z.string().min(1).default('jobfleet'),

  // Postgres connection string. Unset: embedded PGlite under DATA_DIR (development only).
  DATABASE_URL: optionalString,
  // Maximum connections in the pg pool of one process.
  DATABASE_POOL_MAX: int(1).default(10),
  // Where embedded data (PGlite, a locally started Redis) lives.
  DATA_DIR: z.string().min(1).default('./.data'),

  // HTTP listen address of the API.
  API_HOST: z.string().min(1).default('0.0.0.0'),
  API_PORT: int(0).max(65535).default(3000),
  // Largest accepted request body, bytes.
  API_BODY_LIMIT_BYTES: int(1024).default(256 * 1024),
  // Most jobs in one POST /v1/jobs/<kind>/batch. A batch is held in memory and answered whole
  // (~1 ms per job here), so 5,000 at most keeps one request well within API_REQUEST_TIMEOUT_MS.
  API_BATCH_MAX_JOBS: int(1).max(5000).default(500),
  // Largest accepted body of a batch, bytes (at least API_BODY_LIMIT_BYTES): 2 MiB leaves about
  // 4 KiB per job of a full batch, where a reservation with attendees takes ~0.6 KiB, an invoice
  // ~0.25 KiB; 500 such reservations alone are past the single route's 256 KiB.
  API_BATCH_BODY_LIMIT_BYTES: int(1024).default(2 * 1024 * 1024),
  // How many gathered calls of single-job requests one API process runs at once: a call is a
  // chain of Postgres and Redis round trips, and with one at a time a request arriving meanwhile
  // waits for the whole chain before its own starts.
  API_ACCEPT_CONCURRENCY: int(1).max(64).default(4),
  // Basic-auth user and password for /admin/queues (Bull Board); an admin-scoped API key also works.
  ADMIN_USER: z.string().min(1).default('admin'),
  ADMIN_PASSWORD: optionalString,
  // Most jobs one POST /v1/admin/jobs/retry (bulk retry by filter) retries; a filter matching more is refused (422).
  ADMIN_BULK_RETRY_MAX: int(1).max(100_000).default(1000),
  // Timeout for each dependency ping in /health/ready.
  READY_TIMEOUT_MS: int(50).default(1000),
  // Which proxies' X-Forwarded-For names the client (Fastify trustProxy): false (the socket's peer),
  // true (any; only behind a proxy that overwrites the header), or comma-separated addresses/CIDRs.
  API_TRUST_PROXY: trustProxy.default(false),
  // Failed authentications (unknown, revoked or expired key, wrong Basic password) a client address
  // may make per window across the fleet; past that it gets 429 until the window ends.
  AUTH_FAILURE_LIMIT: int(1).default(20),
  AUTH_FAILURE_WINDOW_SECONDS: int(1).default(300),
  // A whole request (headers and body) must arrive within this, or the client gets 408; a socket
  // silent both ways for twice as long is closed.
  API_REQUEST_TIMEOUT_MS: int(100).default(30_000),
  // The request line and headers must arrive within this (at most API_REQUEST_TIMEOUT_MS).
  API_HEADERS_TIMEOUT_MS: int(100).default(10_000),
  // An idle keep-alive connection is closed after this. Above the 60 s idle timeout of common load
  // balancers, so the balancer closes first and never sends on a connection we are closing.
  API_KEEP_ALIVE_TIMEOUT_MS: int(100).default(72_000),
  // Connections the kernel queues before the API accepts them. Node's default, 511, overflows in a
  // burst of 1,000 new connections: the rest lose a handshake packet and wait a second or more.
  // The kernel caps it at net.core.somaxconn.
  API_LISTEN_BACKLOG: int(1).max(65535).default(4096),
  // When set, /metrics (API and worker) needs `Authorization: Bearer <token>`; unset, it is open.
  API_METRICS_TOKEN: optionalString,
  // /v1 is deprecated since this instant (RFC 9745 Deprecation header on every /v1 answer);
  // `never` leaves the header out. The default is the day /v2 shipped.
  API_V1_DEPRECATED_AT: z.union([z.literal('never'), z.iso.datetime({ offset: true })]).default('2026-12-01T00:00:00Z'),
  // When /v1 stops answering (RFC 8594 Sunset header); unset: no date promised, no header.
  API_V1_SUNSET_AT: z.iso.datetime({ offset: true }).optional(),
  // How often each API process writes its counts of deprecated-route calls to Postgres.
  API_DEPRECATION_FLUSH_MS: int(10).default(10_000),

  // Seed a development tenant with a well-known API key (never in production).
  DEV_TENANT_ENABLED: bool.optional(),
  DEV_API_KEY: z.string().min(16).default(DEV_API_KEY),

  // Tenant tiers (JSON object: name -> limits; see the README). Unset: free, standard, enterprise.
  TENANT_TIERS: optionalString,
  // The tier of a tenant created without one, and of one whose tier is no longer defined.
  TENANT_DEFAULT_TIER: z.string().regex(TIER_NAME).default('standard'),
  // How long a process reuses a tenant's tier and overrides before reading them again.
  TENANT_LIMITS_CACHE_SECONDS: int(0).default(10),
  // Length of the window of the request rate limits. A tier's requestsPerMinute and
  // keyRequestsPerMinute are what one window allows, so anything but 60 is for tests.
  RATE_LIMIT_WINDOW_SECONDS: int(1).default(60),

  // How long an Idempotency-Key is remembered.
  IDEMPOTENCY_TTL_SECONDS: int(60).default(24 * 3600),
  // Retention (see the README): how often each API process runs it, rows per delete statement,
  // and how long finished sync_status rows, the admin audit and lock_audit months are kept.
  // afip_invoices are never deleted.
  RETENTION_INTERVAL_SECONDS: int(10).default(3600),
  RETENTION_BATCH_SIZE: int(1).max(100_000).default(5000),
  RETENTION_SYNC_STATUS_DAYS: int(1).default(90),
  // Finished jobs' rows and attempt history (the job admin API), by the job's creation.
  RETENTION_JOB_HISTORY_DAYS: int(1).default(30),
  RETENTION_ADMIN_AUDIT_DAYS: int(1).default(400),
  RETENTION_LOCK_AUDIT_MONTHS: int(1).default(13),

  // Job retention in Redis (Postgres keeps the history): age in seconds and count, per state.
  JOBS_REMOVE_ON_COMPLETE_AGE_SECONDS: int(0).default(3600),
  JOBS_REMOVE_ON_COMPLETE_COUNT: int(0).default(10_000),
  JOBS_REMOVE_ON_FAIL_AGE_SECONDS: int(0).default(7 * 24 * 3600),
  JOBS_REMOVE_ON_FAIL_COUNT: int(0).default(50_000),
  // Base delay of the exponential backoff between attempts.
  JOBS_BACKOFF_DELAY_MS: int(0).default(1000),

  // Comma-separated queues this worker process serves; default all.
  QUEUES: optionalString,
  // Identity of this worker in logs and lock audit rows.
  WORKER_ID: optionalString,
  HOSTNAME: optionalString,
  // Port of the worker's own /metrics and /health endpoints (0 = random, off = disabled).
  WORKER_METRICS_PORT: z.union([z.literal('off'), int(0).max(65535)]).default(9464),
  // SIGTERM: time active jobs get to finish before the worker closes hard.
  SHUTDOWN_TIMEOUT_MS: int(0).default(25_000),
  // Defaults for every queue; <QUEUE>_CONCURRENCY etc. (e.g. CALENDAR_SYNC_CONCURRENCY) override per queue.
  WORKER_CONCURRENCY: int(1).default(10),
  WORKER_LOCK_DURATION_MS: int(1000).default(30_000),
  WORKER_STALLED_INTERVAL_MS: int(1000).default(30_000),
  WORKER_MAX_STALLED_COUNT: int(0).default(2),
  WORKER_ATTEMPTS: int(1).default(8),

  // Default mode of every connector: sandbox (the in-process fakes of `npm start`) or live.
  CONNECTORS_MODE: z.enum(['sandbox', 'live']).optional(),
  // Per dependency, overriding CONNECTORS_MODE: e.g. live Google Calendar with the AFIP simulator.
  CALENDAR_CONNECTOR: z.enum(['sandbox', 'live']).optional(),
  AFIP_CONNECTOR: z.enum(['sandbox', 'live']).optional(),
  S3_CONNECTOR: z.enum(['sandbox', 'live']).optional(),
  // Google Calendar API root (the googleapis rootUrl).
  GOOGLE_CALENDAR_ROOT_URL: z.url().default('https://www.googleapis.com/'),
  // Where service-account JWTs and OAuth refresh tokens are exchanged for access tokens.
  GOOGLE_TOKEN_URL: z.url().default('https://oauth2.googleapis.com/token'),
  // Per-request timeout for Calendar calls.
  GOOGLE_TIMEOUT_MS: int(100).default(15_000),
  // Tenant connections (AFIP certificates, Google credentials) are cached in each worker this long.
  CONNECTION_CACHE_SECONDS: int(0).default(60),

  // Keys that encrypt tenant connection secrets at rest: `kid:base64(32 bytes)`, comma-separated.
  // New secrets use SECRETS_ACTIVE_KEY_ID (default the last key); older keys stay for decryption.
  SECRETS_KEYS: optionalString,
  SECRETS_ACTIVE_KEY_ID: optionalString,

  // AFIP endpoints; the defaults are AFIP's homologation (testing) services.
  AFIP_WSAA_URL: z.url().default('https://wsaahomo.afip.gov.ar/ws/services/LoginCms'),
  AFIP_WSFE_URL: z.url().default('https://wswhomo.afip.gov.ar/wsfev1/service.asmx'),
  // Timeout of each AFIP call (WSAA login, WSFE operation).
  AFIP_TIMEOUT_SECONDS: int(1).default(30),
  // How long a job waits for the voucher-numbering lock before it is re-delayed (no attempt spent).
  AFIP_LOCK_WAIT_MS: int(0).default(5000),
  // TTL of the voucher-numbering lock (auto-extended while held): how long a crashed holder blocks its key.
  AFIP_LOCK_TTL_MS: int(1000).default(30_000),
  // A new WSAA ticket is asked for this long before the cached one expires (the old one stays in use if refused).
  AFIP_TICKET_REFRESH_MARGIN_SECONDS: int(0).default(600),
  // While AFIP holds a login ticket the fleet lost (refuses new logins), how often one worker tries again.
  AFIP_WSAA_RECHECK_SECONDS: int(1).default(300),
  // Most vouchers per FECAESolicitar (a lot of one series); unset: what FECompTotXRequest answers (250); 1: no lots.
  AFIP_BATCH_MAX_VOUCHERS: int(1).optional(),

  // Backup definitions (JSON array) and the targets they write to (JSON object); see the README.
  BACKUP_DEFINITIONS: optionalString,
  BACKUP_TARGETS: optionalString,
  // One run's deadline (dump + upload; the restore check gets as long again): pg_dump is killed then.
  BACKUP_TIMEOUT_SECONDS: int(1).default(3600),
  // Backups running at once across the whole fleet (BullMQ global concurrency of the backup queue).
  MAX_CONCURRENT_BACKUPS: int(1).default(2),
  // Resident memory of a worker process above which backups are deferred or stopped.
  BACKUP_MEMORY_LIMIT_MB: int(64).default(1024),
  // Server where "full" restore checks create (and drop) scratch databases.
  BACKUP_RESTORE_SCRATCH_URL: optionalString,
  // S3 credentials for s3 targets; unset: the AWS SDK's default chain (instance role, AWS_* variables).
  BACKUP_S3_ACCESS_KEY_ID: optionalString,
  BACKUP_S3_SECRET_ACCESS_KEY: optionalString,
  // Multipart part size and parts in flight: a streaming upload holds about their product in memory.
  BACKUP_S3_PART_SIZE_MB: int(5).default(8),
  BACKUP_S3_QUEUE_SIZE: int(1).default(4),
  BACKUP_S3_TIMEOUT_SECONDS: int(1).default(120),

  // Circuit breakers: consecutive dependency failures that open one, and how long it stays open.
  BREAKER_MAX_FAILURES: int(1).default(5),
  CALENDAR_MAX_FAILURES: int(1).optional(),
  AFIP_MAX_FAILURES: int(1).optional(),
  S3_MAX_FAILURES: int(1).optional(),
  POSTGRES_MAX_FAILURES: int(1).optional(),
  BREAKER_HALF_OPEN_AFTER_MS: int(100).default(30_000),
  // How long a job may wait for an unavailable dependency without spending attempts; after that
  // (counted from the job's creation) each wait costs an attempt, so no job waits forever.
  DEPENDENCY_MAX_WAIT_HOURS: int(1).default(24),
  // Extra tries of an idempotent dependency call inside one attempt (exponential backoff, full jitter).
  DEPENDENCY_RETRIES: int(0).default(2),
  DEPENDENCY_RETRY_BASE_MS: int(1).default(200),
  // Calendar calls in flight at once per worker process (Google rate-limits per project).
  CALENDAR_MAX_CONCURRENT_CALLS: int(0).default(20),

  // How often each process re-reads kill switches and feature flags from Postgres: the fallback
  // when a change's Redis message is lost (changes normally arrive by pub/sub at once).
  FLEET_CONTROLS_POLL_MS: int(200).max(5000).default(3000),
  // Retry-After of the 503 a job kind or tenant with intake off answers.
  INTAKE_OFF_RETRY_AFTER_SECONDS: int(1).default(60),
  // A flag turns itself off when one of its variants fails more than this share of job attempts
  // within the window, once at least FLAG_ROLLBACK_MIN_SAMPLE attempts were seen there.
  FLAG_ROLLBACK_FAILURE_RATIO: z.coerce.number().gt(0).max(1).default(0.2),
  FLAG_ROLLBACK_WINDOW_SECONDS: int(60).default(300),
  FLAG_ROLLBACK_MIN_SAMPLE: int(1).default(20),
  // Degradation levels: thresholds, hysteresis and what is shed (degradation.ts).
  ...degradationEnvShape,
});

type Env = z.infer<typeof envSchema>;

export interface WorkerQueueSettings {
  concurrency: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
  attempts: number;
  /** Age of a job after which waiting for a dependency spends attempts like any retry. */
  maxDependencyWaitMs: number;
}

export type ConnectorMode = 'sandbox' | 'live';

/** OpenTelemetry tracing, from the standard OTEL_* variables. */
export interface TracingConfig {
  /** OTLP/HTTP traces URL (…/v1/traces); undefined: tracing is off. */
  tracesUrl: string | undefined;
  /** service.name of every span; undefined: the process's own (`<SERVICE_NAME>-api`, …). */
  serviceName: string | undefined;
  sampler: TracesSampler;
  /** The traceidratio samplers' ratio (default 1). */
  ratio: number;
}

/** How long each kind of row is kept. afip_invoices is never pruned (invoices are kept for years). */
export interface RetentionPolicy {
  /** Rows deleted per statement, each in its own short transaction. */
  batchSize: number;
  /** sync_status rows of finished entities (synced, failed, cancelled) untouched this long are deleted. */
  syncStatusDays: number;
  /** Finished jobs' rows and attempt history (the job admin API), by the job's creation. */
  jobHistoryDays: number;
  adminAuditDays: number;
  /** Whole months of lock_audit kept before the current one; older months are dropped. */
  lockAuditMonths: number;
  /** Month partitions of lock_audit created ahead of need. */
  lockAuditMonthsAhead: number;
}

export interface Config {
  nodeEnv: Env['NODE_ENV'];
  serviceName: string;
  logLevel: Env['LOG_LEVEL'];
  tracing: TracingConfig;
  redis: RedisConfig;
  database: { url: string | undefined; poolMax: number; dataDir: string };
  api: {
    host: string;
    port: number;
    bodyLimitBytes: number;
    /** POST /v1/jobs/<kind>/batch: most jobs per batch, largest body. */
    batch: { maxJobs: number; bodyLimitBytes: number };
    /** Gathered single-job calls running at once per process. */
    acceptConcurrency: number;
    adminUser: string;
    adminPassword: string;
    /** Most jobs one bulk retry by filter may retry. */
    bulkRetryMax: number;
    readyTimeoutMs: number;
    trustProxy: TrustProxy;
    /** Failed authentications allowed per client address per window, fleet-wide. */
    authFailures: { limit: number; windowSeconds: number };
    /** The window of the tenant and key request rate limits. */
    rateLimitWindowSeconds: number;
    /** Deadlines of a slow client: the whole request, its headers (never longer), an idle keep-alive connection. */
    requestTimeoutMs: number;
    headersTimeoutMs: number;
    keepAliveTimeoutMs: number;
    /** The listen queue's length (capped by the kernel's net.core.somaxconn). */
    listenBacklog: number;
    /** Bearer token Prometheus presents to scrape /metrics (API and worker); undefined: open. */
    metricsToken: string | undefined;
    /** The retirement of /v1: since when it is deprecated, when it goes (undefined: not announced). */
    v1: { deprecatedAt: Date | undefined; sunsetAt: Date | undefined };
    /** How often counts of calls to deprecated routes are written to Postgres. */
    deprecationFlushMs: number;
  };
  devTenant: { enabled: boolean; tenantId: string; apiKey: string };
  idempotency: { ttlSeconds: number };
  /** What each retention pass keeps and how often it runs. */
  retention: RetentionPolicy & { intervalMs: number };
  /** Tiers of limits and quotas; a tenant row names its tier and may override single limits. */
  tenants: { tiers: TenantTiers; defaultTier: string; limitsCacheMs: number };
  jobs: {
    removeOnComplete: { age: number; count: number };
    removeOnFail: { age: number; count: number };
    backoffDelayMs: number;
  };
  worker: {
    id: string;
    /** The job kinds this process serves; 'all' (QUEUES unset or *): every registered kind. */
    queues: readonly string[] | 'all';
    shutdownTimeoutMs: number;
    /** undefined: the worker serves no HTTP endpoint (standalone mode shares the API's). */
    metricsPort: number | undefined;
    /** Settings per job kind; a kind without its own (one registered by a test) takes `defaults`. */
    perQueue: Readonly<Partial<Record<string, WorkerQueueSettings>>>;
    defaults: WorkerQueueSettings;
  };
  /** Sandbox (in-process fakes, `npm start` only) or live, per dependency. */
  connectors: { calendar: ConnectorMode; afip: ConnectorMode; s3: ConnectorMode };
  /** Encryption of tenant connection secrets: a `kid:base64` list and the key new secrets use. */
  /** `development`: SECRETS_KEYS is unset and the public development key is in use. */
  secrets: { keys: string; activeKeyId: string | undefined; development: boolean };
  /** How long a worker reuses a tenant's connection (credentials, allowed calendars) before reading it again. */
  connectionCacheMs: number;
  calendar: { rootUrl: string; tokenUrl: string; timeoutMs: number };
  afip: {
    wsaaUrl: string;
    wsfeUrl: string;
    timeoutMs: number;
    lockWaitMs: number;
    lockTtlMs: number;
    /** A new WSAA ticket is asked for this long before the cached one expires. */
    ticketRefreshMarginSeconds: number;
    /** While AFIP holds a ticket the fleet lost, how often one worker tries the login again. */
    lostTicketRecheckMs: number;
    /** Most vouchers per FECAESolicitar; undefined: FECompTotXRequest's answer; 1: one voucher per request. */
    batchMaxVouchers: number | undefined;
  };
  backup: BackupConfig;
  /** Timeout, retry, breaker and bulkhead settings of each dependency. */
  resilience: Readonly<Record<Dependency, DependencyPolicySettings>>;
  /** Kill switches and feature flags: how often they are re-read, and the automatic rollback of a flag. */
  controls: {
    pollMs: number;
    intakeOffRetryAfterSeconds: number;
    rollback: { failureRatio: number; windowMs: number; minSample: number };
  };
  /** The fleet-wide degradation level's thresholds and what it sheds. */
  degradation: DegradationConfig;
}

/** Every dependency with a circuit breaker of its own. */
export const DEPENDENCIES = ['calendar', 'afip-wsaa', 'afip-wsfe', 's3', 'postgres'] as const;
export type Dependency = (typeof DEPENDENCIES)[number];

export interface DependencyPolicySettings {
  /** Bound of one try (0 = none); set a little above the client's own timeout, as a backstop. */
  timeoutMs: number;
  /** Extra tries of an idempotent call after a dependency failure. */
  retries: number;
  retryBaseMs: number;
  /** Consecutive dependency failures that open the breaker. */
  maxFailures: number;
  /** How long an open breaker refuses calls before one trial goes through. */
  halfOpenAfterMs: number;
  /** Calls in flight at once from one process; 0 = no limit. */
  maxConcurrent: number;
}

// A backstop over the clients' own timeouts, so their mapped errors arrive first.
const TIMEOUT_MARGIN_MS = 1000;
// Status writes are single-row statements: far below this unless Postgres is in trouble.
const POSTGRES_CALL_TIMEOUT_MS = 10_000;

function resilienceSettings(env: Env, calendarTimeoutMs: number, afipTimeoutMs: number, s3TimeoutMs: number): Record<Dependency, DependencyPolicySettings> {
  const common = { retries: env.DEPENDENCY_RETRIES, retryBaseMs: env.DEPENDENCY_RETRY_BASE_MS, halfOpenAfterMs: env.BREAKER_HALF_OPEN_AFTER_MS };
  const failures = (override: number | undefined) => override ?? env.BREAKER_MAX_FAILURES;
  const afip = { ...common, timeoutMs: afipTimeoutMs + TIMEOUT_MARGIN_MS, maxFailures: failures(env.AFIP_MAX_FAILURES), maxConcurrent: 0 };
  return {
    calendar: {
      ...common,
      timeoutMs: calendarTimeoutMs + TIMEOUT_MARGIN_MS,
      maxFailures: failures(env.CALENDAR_MAX_FAILURES),
      maxConcurrent: env.CALENDAR_MAX_CONCURRENT_CALLS,
    },
    'afip-wsaa': afip,
    'afip-wsfe': afip,
    s3: { ...common, timeoutMs: s3TimeoutMs + TIMEOUT_MARGIN_MS, maxFailures: failures(env.S3_MAX_FAILURES), maxConcurrent: 0 },
    postgres: { ...common, timeoutMs: POSTGRES_CALL_TIMEOUT_MS, maxFailures: failures(env.POSTGRES_MAX_FAILURES), maxConcurrent: 0 },
  };
}

type Source = Readonly<Record<string, string | undefined>>;

function queueEnvPrefix(queue: QueueName): string {
  return queue.toUpperCase().replace(/-/g, '_');
}

/**
 * Where a queue's own defaults differ from the WORKER_* ones: a backup runs for up to an hour and
 * is heavy, so a process takes few at once and a failing one is not retried eight times.
 */
const QUEUE_DEFAULTS: Partial<Record<QueueName, Partial<WorkerQueueSettings>>> = {
  backup: { concurrency: 2, attempts: 3 },
};

function defaultQueueSettings(env: Env): WorkerQueueSettings {
  return {
    concurrency: env.WORKER_CONCURRENCY,
    lockDurationMs: env.WORKER_LOCK_DURATION_MS,
    stalledIntervalMs: env.WORKER_STALLED_INTERVAL_MS,
    maxStalledCount: env.WORKER_MAX_STALLED_COUNT,
    attempts: env.WORKER_ATTEMPTS,
    maxDependencyWaitMs: env.DEPENDENCY_MAX_WAIT_HOURS * 3_600_000,
  };
}

function perQueueSettings(env: Env, source: Source, issues: string[]): Record<QueueName, WorkerQueueSettings> {
  const overrides = z.object({
    CONCURRENCY: int(1).optional(),
    LOCK_DURATION_MS: int(1000).optional(),
    STALLED_INTERVAL_MS: int(1000).optional(),
    MAX_STALLED_COUNT: int(0).optional(),
    ATTEMPTS: int(1).optional(),
  });
  const entries = WORKER_QUEUES.map((queue) => {
    const prefix = queueEnvPrefix(queue);
    const raw = Object.fromEntries(
      Object.keys(overrides.shape).map((k) => [k, source[`${prefix}_${k}`] || undefined]),
    );
    const parsed = overrides.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) issues.push(`${prefix}_${issue.path.join('.')}: ${issue.message}`);
    }
    const o = parsed.success ? parsed.data : {};
    const base = { ...defaultQueueSettings(env), ...QUEUE_DEFAULTS[queue] };
    const settings: WorkerQueueSettings = {
      ...base,
      concurrency: o.CONCURRENCY ?? base.concurrency,
      lockDurationMs: o.LOCK_DURATION_MS ?? base.lockDurationMs,
      stalledIntervalMs: o.STALLED_INTERVAL_MS ?? base.stalledIntervalMs,
      maxStalledCount: o.MAX_STALLED_COUNT ?? base.maxStalledCount,
      attempts: o.ATTEMPTS ?? base.attempts,
    };
    return [queue, settings] as const;
  });
  return Object.fromEntries(entries) as Record<QueueName, WorkerQueueSettings>;
}

function parseQueues(raw: string | undefined, issues: string[]): QueueName[] | 'all' {
  if (raw === undefined || raw === '*') return 'all';
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const known = new Set<string>(WORKER_QUEUES);
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) issues.push(`QUEUES: unknown queue(s) ${unknown.join(', ')}; known: ${WORKER_QUEUES.join(', ')}`);
  return names.filter((n): n is QueueName => known.has(n));
}

function parseTenantTiers(env: Env, issues: string[]): Config['tenants'] {
  let tiers: TenantTiers = DEFAULT_TENANT_TIERS;
  if (env.TENANT_TIERS !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(env.TENANT_TIERS);
    } catch {
      issues.push('TENANT_TIERS: not valid JSON');
    }
    const parsed = tiersSchema.safeParse(raw);
    if (parsed.success) tiers = parsed.data;
    else if (raw !== undefined) for (const issue of parsed.error.issues) issues.push(`TENANT_TIERS.${issue.path.join('.')}: ${issue.message}`);
  }
  if (tiers[env.TENANT_DEFAULT_TIER] === undefined) {
    issues.push(`TENANT_DEFAULT_TIER: "${env.TENANT_DEFAULT_TIER}" is not a tier (${Object.keys(tiers).join(', ')})`);
  }
  return { tiers, defaultTier: env.TENANT_DEFAULT_TIER, limitsCacheMs: env.TENANT_LIMITS_CACHE_SECONDS * 1000 };
}

function connectorModes(env: Env, production: boolean): Config['connectors'] {
  const fallback = env.CONNECTORS_MODE ?? (production ? 'live' : 'sandbox');
  return { calendar: env.CALENDAR_CONNECTOR ?? fallback, afip: env.AFIP_CONNECTOR ?? fallback, s3: env.S3_CONNECTOR ?? fallback };
}

/** Rules that keep development conveniences out of production; each names its variable. */
function productionIssues(env: Env, config: Config): string[] {
  const issues: string[] = [];
  if (env.ADMIN_PASSWORD === undefined) issues.push('ADMIN_PASSWORD: must be set in production');
  else if (env.ADMIN_PASSWORD === DEV_ADMIN_PASSWORD || env.ADMIN_PASSWORD.length < 16) {
    issues.push('ADMIN_PASSWORD: the default or a short (<16 chars) password is refused in production');
  }
  if (config.devTenant.enabled) issues.push('DEV_TENANT_ENABLED: the development tenant is refused in production');
  for (const [dependency, mode] of Object.entries(config.connectors)) {
    if (mode === 'sandbox') issues.push(`${dependency.toUpperCase()}_CONNECTOR: sandbox connectors are refused in production (set CONNECTORS_MODE=live)`);
  }
  if (env.SECRETS_KEYS === undefined) issues.push('SECRETS_KEYS: must be set in production (it encrypts tenant credentials)');
  else if (env.SECRETS_KEYS.split(',').some((entry) => entry.trim() === DEV_SECRETS_KEY)) {
    issues.push('SECRETS_KEYS: the development key is refused in production');
  }
  if (!env.DATABASE_URL) issues.push('DATABASE_URL: must be set in production (embedded PGlite is for development)');
  if (!env.REDIS_URL) issues.push('REDIS_URL: must be set in production');
  return issues;
}

/**
 * Parses the environment once at boot. Throws a ConfigError naming every bad variable.
 * The result is frozen: pass it down, never read process.env elsewhere.
 */
export function loadConfig(source: Source = process.env): Config {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    throw new ConfigError(
      'Invalid configuration',
      parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    );
  }
  const env = parsed.data;
  const issues: string[] = [];
  const production = env.NODE_ENV === 'production';
  // Node refuses a headers deadline past the request's: the request one would never bite first.
  if (env.API_HEADERS_TIMEOUT_MS > env.API_REQUEST_TIMEOUT_MS) {
    issues.push('API_HEADERS_TIMEOUT_MS: must not exceed API_REQUEST_TIMEOUT_MS');
  }
  // RFC 9745 §3: a resource is deprecated no later than its sunset.
  if (env.API_V1_SUNSET_AT !== undefined && env.API_V1_DEPRECATED_AT !== 'never' && Date.parse(env.API_V1_SUNSET_AT) < Date.parse(env.API_V1_DEPRECATED_AT)) {
    issues.push('API_V1_SUNSET_AT: must not be before API_V1_DEPRECATED_AT');
  }
  // A batch of one job must fit wherever that job alone would.
  if (env.API_BATCH_BODY_LIMIT_BYTES < env.API_BODY_LIMIT_BYTES) {
    issues.push('API_BATCH_BODY_LIMIT_BYTES: must be at least API_BODY_LIMIT_BYTES');
  }

  const tenants = parseTenantTiers(env, issues);
  const config: Config = {
    nodeEnv: env.NODE_ENV,
    serviceName: env.SERVICE_NAME,
    logLevel: env.LOG_LEVEL,
    tracing: tracingConfig(env),
    redis: parseRedisConfig(env, WORKER_QUEUES, issues),
    database: { url: env.DATABASE_URL, poolMax: env.DATABASE_POOL_MAX, dataDir: env.DATA_DIR },
    api: {
      host: env.API_HOST,
      port: env.API_PORT,
      bodyLimitBytes: env.API_BODY_LIMIT_BYTES,
      batch: { maxJobs: env.API_BATCH_MAX_JOBS, bodyLimitBytes: env.API_BATCH_BODY_LIMIT_BYTES },
      acceptConcurrency: env.API_ACCEPT_CONCURRENCY,
      adminUser: env.ADMIN_USER,
      adminPassword: env.ADMIN_PASSWORD ?? DEV_ADMIN_PASSWORD,
      bulkRetryMax: env.ADMIN_BULK_RETRY_MAX,
      readyTimeoutMs: env.READY_TIMEOUT_MS,
      trustProxy: env.API_TRUST_PROXY,
      authFailures: { limit: env.AUTH_FAILURE_LIMIT, windowSeconds: env.AUTH_FAILURE_WINDOW_SECONDS },
      rateLimitWindowSeconds: env.RATE_LIMIT_WINDOW_SECONDS,
      requestTimeoutMs: env.API_REQUEST_TIMEOUT_MS,
      headersTimeoutMs: env.API_HEADERS_TIMEOUT_MS,
      keepAliveTimeoutMs: env.API_KEEP_ALIVE_TIMEOUT_MS,
      listenBacklog: env.API_LISTEN_BACKLOG,
      metricsToken: env.API_METRICS_TOKEN,
      v1: {
        deprecatedAt: env.API_V1_DEPRECATED_AT === 'never' ? undefined : new Date(env.API_V1_DEPRECATED_AT),
        sunsetAt: env.API_V1_SUNSET_AT === undefined ? undefined : new Date(env.API_V1_SUNSET_AT),
      },
      deprecationFlushMs: env.API_DEPRECATION_FLUSH_MS,
    },
    devTenant: {
      enabled: env.DEV_TENANT_ENABLED ?? !production,
      tenantId: DEV_TENANT_ID,
      apiKey: env.DEV_API_KEY,
    },
    idempotency: { ttlSeconds: env.IDEMPOTENCY_TTL_SECONDS },
    retention: {
      intervalMs: env.RETENTION_INTERVAL_SECONDS * 1000,
      batchSize: env.RETENTION_BATCH_SIZE,
      syncStatusDays: env.RETENTION_SYNC_STATUS_DAYS,
      jobHistoryDays: env.RETENTION_JOB_HISTORY_DAYS,
      adminAuditDays: env.RETENTION_ADMIN_AUDIT_DAYS,
      lockAuditMonths: env.RETENTION_LOCK_AUDIT_MONTHS,
      // Two months ahead: a pass missed for weeks still finds next month's partition there.
      lockAuditMonthsAhead: 2,
    },
    tenants,
    jobs: {
      removeOnComplete: { age: env.JOBS_REMOVE_ON_COMPLETE_AGE_SECONDS, count: env.JOBS_REMOVE_ON_COMPLETE_COUNT },
      removeOnFail: { age: env.JOBS_REMOVE_ON_FAIL_AGE_SECONDS, count: env.JOBS_REMOVE_ON_FAIL_COUNT },
      backoffDelayMs: env.JOBS_BACKOFF_DELAY_MS,
    },
    worker: {
      id: env.WORKER_ID ?? `${env.HOSTNAME ?? hostname()}:${process.pid}`,
      queues: parseQueues(env.QUEUES, issues),
      shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
      metricsPort: env.WORKER_METRICS_PORT === 'off' ? undefined : env.WORKER_METRICS_PORT,
      perQueue: perQueueSettings(env, source, issues),
      defaults: defaultQueueSettings(env),
    },
    connectors: connectorModes(env, production),
    secrets: { keys: env.SECRETS_KEYS ?? DEV_SECRETS_KEY, activeKeyId: env.SECRETS_ACTIVE_KEY_ID, development: env.SECRETS_KEYS === undefined },
    connectionCacheMs: env.CONNECTION_CACHE_SECONDS * 1000,
    calendar: { rootUrl: env.GOOGLE_CALENDAR_ROOT_URL, tokenUrl: env.GOOGLE_TOKEN_URL, timeoutMs: env.GOOGLE_TIMEOUT_MS },
    afip: {
      wsaaUrl: env.AFIP_WSAA_URL,
      wsfeUrl: env.AFIP_WSFE_URL,
      timeoutMs: env.AFIP_TIMEOUT_SECONDS * 1000,
      lockWaitMs: env.AFIP_LOCK_WAIT_MS,
      lockTtlMs: env.AFIP_LOCK_TTL_MS,
      ticketRefreshMarginSeconds: env.AFIP_TICKET_REFRESH_MARGIN_SECONDS,
      lostTicketRecheckMs: env.AFIP_WSAA_RECHECK_SECONDS * 1000,
      batchMaxVouchers: env.AFIP_BATCH_MAX_VOUCHERS,
    },
    backup: parseBackupConfig(env, issues),
    resilience: resilienceSettings(env, env.GOOGLE_TIMEOUT_MS, env.AFIP_TIMEOUT_SECONDS * 1000, env.BACKUP_S3_TIMEOUT_SECONDS * 1000),
    controls: {
      pollMs: env.FLEET_CONTROLS_POLL_MS,
      intakeOffRetryAfterSeconds: env.INTAKE_OFF_RETRY_AFTER_SECONDS,
      rollback: { failureRatio: env.FLAG_ROLLBACK_FAILURE_RATIO, windowMs: env.FLAG_ROLLBACK_WINDOW_SECONDS * 1000, minSample: env.FLAG_ROLLBACK_MIN_SAMPLE },
    },
    degradation: parseDegradationConfig(env, tenants.tiers, issues),
  };
  if (production) issues.push(...productionIssues(env, config));
  if (issues.length > 0) throw new ConfigError('Invalid configuration', issues);
  return deepFreeze(config);
}

function tracingConfig(env: Env): TracingConfig {
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  // As the spec says: the base URL gets the signal's path; the per-signal URL is used as it is.
  const tracesUrl = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (base === undefined ? undefined : `${base.replace(/\/+$/, '')}/v1/traces`);
  return {
    tracesUrl: env.OTEL_SDK_DISABLED ? undefined : tracesUrl,
    serviceName: env.OTEL_SERVICE_NAME,
    sampler: env.OTEL_TRACES_SAMPLER,
    ratio: env.OTEL_TRACES_SAMPLER_ARG ?? 1,
  };
}

/** The config of an API or worker process: Redis and Postgres are shared with its peers. */
export type ServiceConfig = Config & {
  redis: Config['redis'] & { url: string; main: RedisTarget };
  database: Config['database'] & { url: string };
};

function asServiceConfig(config: Config): ServiceConfig {
  const { redis, database } = config;
  const issues: string[] = [];
  // Only `npm start` may embed them: separate processes cannot share PGlite or a private Redis.
  if (!redis.url) issues.push('REDIS_URL: required for api and worker processes (only `npm start` embeds Redis)');
  if (!database.url) issues.push('DATABASE_URL: required for api and worker processes (only `npm start` embeds PGlite)');
  if (issues.length > 0 || !redis.url || !redis.main || !database.url) throw new ConfigError('Invalid configuration', issues);
  return { ...config, redis: { ...redis, url: redis.url, main: redis.main }, database: { ...database, url: database.url } };
}

/**
 * For process entry points: a bad environment is printed plainly (no logger exists before the
 * config does) and the process exits 1 instead of crash-looping with a stack trace.
 */
export function loadConfigOrExit(options?: { source?: Source }): Config;
export function loadConfigOrExit(options: { source?: Source; role: 'service' }): ServiceConfig;
export function loadConfigOrExit(options: { source?: Source; role?: 'service' } = {}): Config {
  try {
    const config = loadConfig(options.source ?? process.env);
    return options.role === 'service' ? deepFreeze(asServiceConfig(config)) : config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
