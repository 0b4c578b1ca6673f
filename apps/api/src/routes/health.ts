import type { Database } from '@jobfleet/db';
import { checkReadiness, mayScrape, METRICS_CHALLENGE, withDeadline, type Metrics } from '@jobfleet/observability';
import { REDIS_CHECK, redisProbes, type RedisConnections } from '@jobfleet/queue';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { readDegradedDependencies, type DegradationView } from '@jobfleet/resilience';
import { docs } from '../openapi';
import { HttpProblem } from '../problem';

export interface HealthRoutesDeps {
  database: Database;
  /** Every Redis instance is pinged; the breaker view is read from `main`. */
  redis: Pick<RedisConnections, 'main' | 'instances'>;
  /** Key prefix of the fleet's breaker view in Redis. */
  prefix: string;
  metrics: Metrics;
  /** Bound on each dependency ping of /health/ready. */
  readyTimeoutMs: number;
  /** Bearer token /metrics requires; undefined: open. */
  metricsToken: string | undefined;
  /** The fleet's degradation level, as this process last read it. */
  degradation: DegradationView;
}

/** Probes, unauthenticated as orchestrators expect, and Prometheus, behind a bearer token if one is configured. */
export function registerHealthRoutes(app: FastifyInstance, { database, redis, prefix, metrics, readyTimeoutMs, metricsToken, degradation }: HealthRoutesDeps): void {
  app.get('/health/live', { schema: docs.live }, async () => ({ status: 'ok' }));

  // Only our own stores: a Google or AFIP outage must not take API replicas out of rotation.
  app.get('/health/ready', { schema: docs.ready }, async (request, reply) => {
    const { ready, results } = await checkReadiness<string>({
      ...redisProbes(redis.instances, readyTimeoutMs),
      database: () => database.ping(readyTimeoutMs),
    });
    // The reason goes to the log only: this endpoint is unauthenticated, and errors name hosts and ports.
    for (const [dependency, result] of Object.entries(results)) {
      if (!result.ok) request.log.warn({ err: result.error, dependency }, 'readiness check failed');
    }
    const checks = Object.fromEntries(Object.entries(results).map(([name, result]) => [name, { status: result.ok ? 'ok' : 'failed' }]));
    // What the workers' breakers say (Google, AFIP, S3...): reported, never a reason for 503.
    const degraded = results[REDIS_CHECK]?.ok
      ? await withDeadline(readDegradedDependencies(redis.main, prefix), readyTimeoutMs, 'breaker view').catch(() => ({}))
      : {};
    const status = !ready ? 'unavailable' : Object.keys(degraded).length > 0 ? 'degraded' : 'ok';
    const { level, ...levelDetail } = degradation.current();
    return reply.code(ready ? 200 : 503).send({ status, checks, degraded, level, degradation: levelDetail });
  });

  const requireScraper = async (request: FastifyRequest) => {
    if (!mayScrape(metricsToken, request.headers.authorization)) {
      throw new HttpProblem(401, 'Scraping /metrics needs its bearer token (Authorization: Bearer <token>)', {
        headers: { 'www-authenticate': METRICS_CHALLENGE },
      });
    }
  };
  app.get('/metrics', { schema: docs.metrics, onRequest: requireScraper }, async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
}
