import { randomUUID } from 'node:crypto';
import type { Config } from '@jobfleet/config';
import { isSpanContextValid, trace } from '@opentelemetry/api';
import { adminAuditRepository, createTenantLimitsCache, type Database } from '@jobfleet/db';
import { JOB_KINDS, type AnyJobKind } from '@jobfleet/kinds';
import type { Logger, Metrics } from '@jobfleet/observability';
import { createFleetControls, type FleetControls } from '@jobfleet/controls';
import { createSubscriberConnection, createTenantCapacity, type RedisConnections } from '@jobfleet/queue';
import { startDegradation, type DegradationView } from '@jobfleet/resilience';
import type { Queue } from 'bullmq';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { parseKeyring } from '@jobfleet/secrets';
import { queueRedisCaller } from './dependencies';
import { createDeprecatedUsageCounter, createSuccessors, installV1Deprecation } from './deprecation';
import { registerDocs } from './openapi';
import { MAX_PARAM_LENGTH } from './params';
import { createAuth } from './plugins/auth';
import { createAuthFailureLimiter } from './plugins/auth-failures';
import { answerClientError, HttpProblem, installProblemHandlers, sendError } from './problem';
import { installRateLimits } from './rate-limit';
import { registerAdminRoutes } from './routes/admin';
import { registerApiKeyRoutes } from './routes/api-keys';
import { createJobAcceptor } from './routes/accept-jobs';
import { registerBatchRoutes } from './routes/batch';
import { registerBackupRoutes } from './routes/backups';
import { registerConnectionRoutes } from './routes/connections';
import { registerDeprecationRoutes } from './routes/deprecations';
import { intakeRefusal, registerFleetControlRoutes } from './routes/fleet-controls';
import { registerHealthRoutes } from './routes/health';
import { registerJobAdminRoutes } from './routes/job-admin';
import { registerJobRoutes } from './routes/jobs';
import { registerSyncRoutes } from './routes/sync';
import { registerUsageRoutes } from './routes/usage';
import { registerTenantLimitRoutes } from './routes/tenant-limits';
import { registerV2Routes } from './routes/v2/routes';
import { registerSecurityHeaders, setSecurityHeaders } from './security-headers';

export interface ApiDeps {
  config: Config;
  database: Database;
  /** A queue per job kind, by name (createQueues). */
  queues: Readonly<Record<string, Queue>>;
  /** The job kinds to serve routes for; default the registry. */
  kinds?: readonly AnyJobKind[];
  /**
   * The producer connections (fail fast when Redis is down): `main` for the fleet-wide counters,
   * each queue's for its jobs and tenant capacity; /health/ready pings every instance.
   */
  redis: RedisConnections;
  logger: Logger;
  metrics: Metrics;
  /** How long an API key lookup is reused, i.e. how late a revocation may bite. Default 5000 ms. */
  authCacheTtlMs?: number;
  /** How long a kind's admission (the tenant's calendar, its CUIT) is reused. Default 5000 ms. */
  admissionCacheTtlMs?: number;
  /**
   * The degradation level and the fleet controls of a process that runs workers too (the
   * standalone start), which own them: borrowed, not closed with the app. Default: the API
   * starts its own and closes them with the app.
   */
  shared?: { degradation: DegradationView; controls: FleetControls };
}

/**
 * Fastify logs two lines per request (incoming, completed); this logs one, when it completes,
 * with the request and the answer: logging was a tenth of a request's CPU.
 */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {
    // Logged with its outcome, in requestCompleted.
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    const line = { req: request, res: reply, responseTime: reply.elapsedTime };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request completed');
  }
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The producer's X-Request-Id if it is one token of at most 128 plain characters; else ours is generated. */
function acceptableRequestId(header: string | string[] | undefined): string | undefined {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : undefined;
}

/**
 * The request's trace in a W3C `traceresponse` header (Trace Context Level 2: version, trace id,
 * span id, flags), so a producer can look its request up; undefined when tracing is off.
 */
function traceResponse(): string | undefined {
  const context = trace.getActiveSpan()?.spanContext();
  if (!context || !isSpanContextValid(context)) return undefined;
  return `00-${context.traceId}-${context.spanId}-${context.traceFlags.toString(16).padStart(2, '0')}`;
}

/** Every API replica reads the fleet's level and may be the one evaluating it; stopped with the app. */
function startOwnDegradation(app: FastifyInstance, { config, database, queues, redis, logger, metrics }: ApiDeps): DegradationView {
  const degradation = startDegradation({
    config: config.degradation,
    prefix: config.redis.prefix,
    id: `api:${config.worker.id}`,
    sources: { main: redis.main, instances: redis.instances, queues: Object.values(queues), pingPostgres: (timeoutMs) => database.ping(timeoutMs) },
    audit: (entries) => adminAuditRepository.append(database.db, entries),
    logger,
    metrics,
    timeoutMs: config.api.readyTimeoutMs,
    countsAsWorker: false,
  });
  app.addHook('onClose', () => degradation.stop());
  return degradation;
}

/** The kill switches and flags of an API-only process, read before it serves; closed with the app. */
async function startOwnControls(app: FastifyInstance, { config, database, redis, logger }: ApiDeps): Promise<FleetControls> {
  const controls = createFleetControls({
    db: database.db,
    redis: redis.main,
    subscriber: createSubscriberConnection(redis.main, `${config.serviceName}-api:controls`),
    prefix: config.redis.prefix,
    pollMs: config.controls.pollMs,
    logger,
  });
  await controls.start();
  app.addHook('onClose', () => controls.close());
  return controls;
}

/**
 * The HTTP API, ready to `listen` or `inject`. It borrows its dependencies: closing the app closes
 * none of them, so the caller closes queues, Redis and the database after `app.close()`.
 */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { config, database, queues, redis, metrics } = deps;
  // Typed as Fastify's base logger so the instance is the plain FastifyInstance the routes take.
  const loggerInstance: FastifyBaseLogger = deps.logger;
  const { requestTimeoutMs, headersTimeoutMs, keepAliveTimeoutMs } = config.api;
  const app = Fastify({
    loggerInstance,
    bodyLimit: config.api.bodyLimitBytes,
    // Slow clients are cut off: the whole request, and its headers sooner, must arrive in time
    // (408). A socket silent both ways for twice that (a client that stopped reading its answer)
    // is closed; later than the request deadline, so that a stalled request gets its 408 first.
    requestTimeout: requestTimeoutMs,
    connectionTimeout: 2 * requestTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    http: {
      headersTimeout: headersTimeoutMs,
      // Node checks both deadlines only this often (30 s by default): often enough that they bite on time.
      connectionsCheckingInterval: Math.min(1000, Math.ceil(headersTimeoutMs / 4)),
    },
    clientErrorHandler: answerClientError,
    // A producer's X-Request-Id is kept when it is a plain token, so its id and ours are one.
    requestIdHeader: false,
    genReqId: (request) => acceptableRequestId(request.headers['x-request-id']) ?? randomUUID(),
    logController: new OneLinePerRequest(),
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // request.ip, which failed authentications are counted by, is the client's behind a trusted proxy.
    trustProxy: config.api.trustProxy,
    // The router's own refusals (a malformed percent-encoding in the URL) answer as problem+json too.
    frameworkErrors: (error, request, reply) => {
      setSecurityHeaders(reply);
      sendError(request, reply, new HttpProblem(400, `The URL is not valid: ${error.message}`));
    },
  });

  // zod is the one validator: handlers parse, so errors come out as our problem+json. Route
  // schemas exist for the OpenAPI document only and must neither validate nor reshape responses.
  app.setValidatorCompiler(() => (data: unknown) => ({ value: data }));
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  installProblemHandlers(app);
  // Bodies are JSON only; Fastify's default text/plain parser would turn a wrong type into a 400.
  app.removeContentTypeParser('text/plain');

  // Bodies are read as they come: a compressed one would be parsed as garbage (or, worse, as JSON).
  // Answered, not thrown: a throw would reach Bull Board's error handler on its routes, which knows no status of ours.
  app.addHook('onRequest', async (request, reply) => {
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      const problem = new HttpProblem(415, `Content-Encoding "${encoding}" is not supported; send the body uncompressed`, {
        type: '/problems/unsupported-content-encoding',
      });
      return sendError(request, reply, problem);
    }
  });

  await registerSecurityHeaders(app);
  app.addHook('onSend', async (request, reply) => {
    // An answer to a caller who identified itself is theirs alone: no shared cache may keep it.
    if (request.headers.authorization !== undefined || request.headers['x-api-key'] !== undefined) reply.header('cache-control', 'no-store');
    reply.header('x-request-id', request.id);
    const traced = traceResponse();
    if (traced !== undefined) reply.header('traceresponse', traced);
  });

  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL, so ids do not explode the label set.
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route };
    metrics.httpRequests.inc({ ...labels, status_code: String(reply.statusCode) });
    metrics.httpRequestDuration.observe(labels, reply.elapsedTime / 1000);
  });

  await registerDocs(app, { title: 'jobfleet API', v1Deprecated: config.api.v1.deprecatedAt !== undefined });
  const degradation = deps.shared?.degradation ?? startOwnDegradation(app, deps);
  const tenantLimits = createTenantLimitsCache(database.db, config.tenants);
  const auth = createAuth({
    db: database.db,
    cacheTtlMs: deps.authCacheTtlMs,
    admin: { user: config.api.adminUser, password: config.api.adminPassword },
    failures: createAuthFailureLimiter({ redis: redis.main, keyPrefix: `${config.redis.prefix}:auth-failures`, ...config.api.authFailures }),
    limiter: installRateLimits(app, {
      redis: redis.main,
      prefix: config.redis.prefix,
      windowSeconds: config.api.rateLimitWindowSeconds,
      limits: tenantLimits,
      degradation: { view: degradation, factor: config.degradation.rateLimitFactor },
    }),
  });
  registerHealthRoutes(app, { database, redis, prefix: config.redis.prefix, metrics, readyTimeoutMs: config.api.readyTimeoutMs, metricsToken: config.api.metricsToken, degradation });
  const kinds = deps.kinds ?? JOB_KINDS;
  const capacity = createTenantCapacity(redis.forQueue, config.redis.prefix);
  // Kill switches and flags, cached here: the enqueue routes check them without a call per request.
  const controls = deps.shared?.controls ?? (await startOwnControls(app, deps));
  const acceptor = createJobAcceptor({
    config,
    db: database.db,
    queues,
    redisOf: queueRedisCaller(redis),
    capacity,
    limits: tenantLimits,
    degradation,
    intakeRefusal: (kind, tenantId) => intakeRefusal(controls, config, kind, tenantId),
    log: app.log,
    admissionCacheTtlMs: deps.admissionCacheTtlMs,
  });
  // Requests waiting for the acceptor get their answers before the caller closes Postgres and Redis.
  app.addHook('onClose', () => acceptor.drain());
  const jobRoutes = { config, db: database.db, kinds, queues, redis, auth, acceptor };
  const successors = createSuccessors();
  installV1Deprecation(app, {
    v1: config.api.v1,
    successors,
    usage: createDeprecatedUsageCounter({ db: database.db, flushMs: config.api.deprecationFlushMs, log: app.log }),
    auth,
  });
  registerJobRoutes(app, jobRoutes);
  registerBatchRoutes(app, jobRoutes);
  registerV2Routes(app, { ...jobRoutes, successors });
  registerDeprecationRoutes(app, { db: database.db, auth });
  registerUsageRoutes(app, { db: database.db, auth, kinds, redis, capacity, limits: tenantLimits });
  registerSyncRoutes(app, { db: database.db, auth, kinds });
  registerBackupRoutes(app, { db: database.db, auth });
  registerTenantLimitRoutes(app, { config, db: database.db, auth, kinds });
  registerConnectionRoutes(app, {
    db: database.db,
    keyring: parseKeyring(config.secrets.keys, config.secrets.activeKeyId),
    auth,
    allowAccessTokens: config.nodeEnv !== 'production',
  });
  registerApiKeyRoutes(app, { db: database.db, auth });
  registerFleetControlRoutes(app, { db: database.db, auth, controls, kindNames: kinds.map((kind) => kind.name) });
  registerJobAdminRoutes(app, { config, db: database.db, auth, kinds, queues, redis, capacity });
  await registerAdminRoutes(app, { queues, auth });
  return app;
}
