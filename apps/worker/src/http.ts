import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Database } from '@jobfleet/db';
import { coerceError } from '@jobfleet/contracts';
import { checkReadiness, mayScrape, METRICS_CHALLENGE, type Metrics, type ReadinessResult } from '@jobfleet/observability';
import type { DegradationView, DependencyGuard } from '@jobfleet/resilience';
import { redisProbes, type RedisClient } from '@jobfleet/queue';

export interface WorkerHttpDeps {
  metrics: Metrics;
  database: Database;
  /** Every Redis instance of the process (RedisConnections.instances): readiness pings each. */
  redis: ReadonlyMap<string, RedisClient>;
  readyTimeoutMs: number;
  /** Bearer token /metrics requires (API_METRICS_TOKEN, as for the API's); undefined: open. */
  metricsToken?: string;
  /** This process's breakers: reported in the readiness body, never a reason to fail it. */
  guards?: Readonly<Record<string, Pick<DependencyGuard, 'state'>>>;
  /** The fleet's degradation level this process acts on: shown as `level` in the readiness body. */
  degradation?: Pick<DegradationView, 'current'>;
}

/**
 * The worker's own small endpoint for Prometheus (/metrics) and Kubernetes probes
 * (/health/live, /health/ready). Readiness pings Redis and Postgres only; dependencies whose
 * breaker is open or half-open are listed under `degraded` with the answer still 200, so an
 * outage of Google or AFIP never gets workers restarted.
 */
export async function startWorkerHttp(deps: WorkerHttpDeps, port: number, host = '0.0.0.0'): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type }).end(body);
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      send(405, JSON.stringify({ title: 'Method Not Allowed', status: 405 }));
      return;
    }
    switch (path) {
      case '/metrics':
        if (!mayScrape(deps.metricsToken, req.headers.authorization)) {
          res.setHeader('www-authenticate', METRICS_CHALLENGE);
          const detail = 'Scraping /metrics needs its bearer token (Authorization: Bearer <token>)';
          send(401, JSON.stringify({ type: 'about:blank', title: 'Unauthorized', status: 401, detail }), 'application/problem+json');
          return;
        }
        deps.metrics.registry
          .metrics()
          .then((text) => send(200, text, deps.metrics.registry.contentType))
          .catch((error: unknown) => send(500, JSON.stringify({ title: 'metrics failed', detail: String(error) })));
        return;
      case '/health/live':
        send(200, JSON.stringify({ status: 'ok' }));
        return;
      case '/health/ready':
        // readiness() settles every probe itself; it does not reject.
        void readiness(deps).then(({ ready, checks }) => {
          const degraded = Object.fromEntries(Object.entries(deps.guards ?? {}).flatMap(([name, guard]) => (guard.state() === 'closed' ? [] : [[name, guard.state()]])));
          const status = !ready ? 'unavailable' : Object.keys(degraded).length > 0 ? 'degraded' : 'ok';
          const level = deps.degradation === undefined ? {} : { level: deps.degradation.current().level };
          send(ready ? 200 : 503, JSON.stringify({ status, checks, degraded, ...level }));
        });
        return;
      default:
        send(404, JSON.stringify({ title: 'Not Found', status: 404 }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}

async function readiness(deps: WorkerHttpDeps): Promise<{ ready: boolean; checks: Record<string, string> }> {
  const { ready, results } = await checkReadiness<string>({
    ...redisProbes(deps.redis, deps.readyTimeoutMs),
    postgres: () => deps.database.ping(deps.readyTimeoutMs),
  });
  // Served on the metrics port, inside the cluster only: the reason helps whoever reads the probe.
  const describe = (result: ReadinessResult) => (result.ok ? 'ok' : coerceError(result.error).message);
  return { ready, checks: Object.fromEntries(Object.entries(results).map(([name, result]) => [name, describe(result)])) };
}
