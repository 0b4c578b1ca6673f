import type { Database } from '@jobfleet/db';
import type { Metrics } from '@jobfleet/observability';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { withDeadline } from '../dependencies';
import { docs } from '../openapi';

export interface HealthRoutesDeps {
  database: Database;
  redis: Redis;
  metrics: Metrics;
  /** Bound on each dependency ping of /health/ready. */
  readyTimeoutMs: number;
}

interface Check {
  status: 'ok' | 'failed';
}

// The reason goes to the log only: this endpoint is unauthenticated, and errors name hosts and ports.
async function check(name: string, ping: () => Promise<unknown>, log: FastifyBaseLogger): Promise<Check> {
  try {
    await ping();
    return { status: 'ok' };
  } catch (err) {
    log.warn({ err, dependency: name }, 'readiness check failed');
    return { status: 'failed' };
  }
}

/** Probes and Prometheus; unauthenticated, as orchestrators and scrapers expect. */
export function registerHealthRoutes(app: FastifyInstance, { database, redis, metrics, readyTimeoutMs }: HealthRoutesDeps): void {
  app.get('/health/live', { schema: docs.live }, async () => ({ status: 'ok' }));

  // Only our own stores: a Google or AFIP outage must not take API replicas out of rotation.
  app.get('/health/ready', { schema: docs.ready }, async (request, reply) => {
    const [redisCheck, databaseCheck] = await Promise.all([
      check('redis', () => withDeadline(redis.ping(), readyTimeoutMs, 'redis ping'), request.log),
      check('postgres', () => database.ping(readyTimeoutMs), request.log),
    ]);
    const checks = { redis: redisCheck, database: databaseCheck };
    const ready = redisCheck.status === 'ok' && databaseCheck.status === 'ok';
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks });
  });

  app.get('/metrics', { schema: docs.metrics }, async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
}
