import { loadConfig, type Config } from '@jobfleet/config';
import { HARD_CLOSE_TIMEOUT_MS } from '@jobfleet/queue';
import { isEntryPointName, type EntryPointName } from '../../scripts/entry-points.ts';

/**
 * What the deployment tests (infra/k8s, docker-compose.yml) share: the secrets an operator
 * provides, as placeholders that pass the production checks, and the rules a process definition
 * must keep whatever runs it.
 */
export const SECRET_PLACEHOLDERS: Readonly<Record<string, string>> = {
  DATABASE_URL: 'postgres://jobfleet:placeholder@postgres:5432/jobfleet',
  REDIS_URL: 'redis://:placeholder@redis:6379',
  ADMIN_PASSWORD: 'placeholder-operator-password',
  SECRETS_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}`,
};

/** The jobfleet process a command line starts (`node … dist/<name>.js`); throws for any other. */
export function entryPointOf(argv: readonly string[]): EntryPointName {
  const bundle = argv.find((arg) => /^dist\/[\w-]+\.js$/.test(arg));
  const name = bundle?.slice('dist/'.length, -'.js'.length);
  if (!isEntryPointName(name)) throw new Error(`runs no entry point of scripts/entry-points.ts: ${JSON.stringify(argv)}`);
  return name;
}

/** The one queue a worker definition serves; throws if it serves all or several. */
export function workerQueueOf(config: Config): string {
  const { queues } = config.worker;
  if (queues === 'all' || queues.length !== 1) throw new Error(`a worker definition serves one queue, not ${JSON.stringify(queues)}`);
  return queues[0]!;
}

/**
 * The shortest stop grace (terminationGracePeriodSeconds, stop_grace_period) a process with this
 * environment needs: a worker drains for SHUTDOWN_TIMEOUT_MS, then closes hard; the API finishes
 * requests that may take API_REQUEST_TIMEOUT_MS. The grace must be longer than this.
 */
export function drainTimeMs(environment: Record<string, string>, entryPoint: EntryPointName): number {
  const config = loadConfig(environment);
  return entryPoint === 'worker' ? config.worker.shutdownTimeoutMs + HARD_CLOSE_TIMEOUT_MS : config.api.requestTimeoutMs;
}
