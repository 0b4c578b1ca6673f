import type { FakeCalendar } from '@jobfleet/calendar/fake';
import { freePort } from './chaos';
import { waitFor, type RunningProcess } from './processes';
import { TEST_REDIS_URL } from './redis';

export interface ProductionEnv {
  env: Record<string, string>;
  apiPort: number;
  workerPort: number;
}

/**
 * What an api and a calendar-sync worker get when run as production runs them (NODE_ENV=production,
 * live connectors, secrets that pass the production checks), against this machine's Redis, the
 * given database and a fake Calendar, each on a free port.
 */
export async function productionEnv(options: { databaseUrl: string; prefix: string; secretsKeys: string; calendar: FakeCalendar }): Promise<ProductionEnv> {
  const [apiPort, workerPort] = [await freePort(), await freePort()];
  const env = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    ADMIN_PASSWORD: 'a-long-production-admin-password',
    SECRETS_KEYS: options.secretsKeys,
    DATABASE_URL: options.databaseUrl,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: options.prefix,
    API_HOST: '127.0.0.1',
    API_PORT: String(apiPort),
    WORKER_METRICS_PORT: String(workerPort),
    QUEUES: 'calendar-sync',
    GOOGLE_CALENDAR_ROOT_URL: options.calendar.rootUrl,
    GOOGLE_TOKEN_URL: options.calendar.tokenUrl,
  };
  return { env, apiPort, workerPort };
}

/** Resolves once `child`'s /health/ready on `port` answers 200; throws if it exits first. */
export async function waitUntilHealthy(child: RunningProcess, port: number, options: { what: string; timeoutMs: number; intervalMs?: number }): Promise<void> {
  await waitFor(
    async () => {
      if (child.child.exitCode !== null) throw new Error(`${options.what} exited:\n${child.output()}`);
      return fetch(`http://127.0.0.1:${port}/health/ready`).then(
        (answer) => answer.status === 200,
        () => false,
      );
    },
    { ...options, what: `${options.what}'s /health/ready` },
  );
}
