import type { Database } from '@jobfleet/db';
import type { Metrics } from '@jobfleet/observability';
import type { FastifyInstance } from 'fastify';
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

type Check = { status: 'ok' } | { status: 'failed'; error: string };

async function check(ping: () => Promise<unknown>): Promise<Check> {
  try {
    await ping();
    return { status: 'ok' };
  } catch (error) {
    return { status: 'failed', error: error instanceof Error ? error.message : String(error) };
  }
}

/** Probes and Prometheus; unauthenticated, as orchestrators and scrapers expect. */
export function registerHealthRoutes(app: FastifyInstance, { database, redis, metrics, readyTimeoutMs }: HealthRoutesDeps): void {
  app.get('/health/live', { schema: docs.live }, async () => ({ status: 'ok' }));

  // Only our own stores: a Google or AFIP outage must not take API replicas out of rotation.
  app.get('/health/ready', { schema: docs.ready }, async (_request, reply) => {
    const [redisCheck, databaseCheck] = await Promise.all([
      check(() => withDeadline(redis.ping(), readyTimeoutMs, 'redis ping')),
      check(() => database.ping(readyTimeoutMs)),
    ]);
    const checks = { redis: redisCheck, database: databaseCheck };
    const ready = redisCheck.status === 'ok' && databaseCheck.status === 'ok';
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks });
  });

  app.get('/metrics', { schema: docs.metrics }, async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
}
