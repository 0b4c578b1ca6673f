/**
 * `npm run test:e2e:cluster`: starts a private 3-master Redis Cluster on 127.0.0.1:7201-7203 (in a
 * temporary directory, no persistence), runs jest with REDIS_URL pointing at it (its arguments go
 * to jest: `tsx tests/support/redis-cluster.ts tests/e2e/batch.test.ts`), and removes the cluster
 * again, whatever jest's outcome. Exits with jest's status. Test prefixes are hash-tagged on a
 * cluster (uniquePrefix), so each test file's keys share one slot, as production's `{jobfleet}` does.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NODE, REPO_ROOT, waitFor } from './processes';

const execFileAsync = promisify(execFile);

export const CLUSTER_PORTS = [7201, 7202, 7203] as const;

export interface RedisCluster {
  /** `redis-cluster://127.0.0.1:7201,…`: what REDIS_URL takes. */
  url: string;
  stop(): Promise<void>;
}

const cli = async (port: number, ...args: string[]) => (await execFileAsync('redis-cli', ['-p', String(port), ...args], { timeout: 10_000 })).stdout;

async function answers(port: number, command: string[], expected: RegExp): Promise<boolean> {
  try {
    return expected.test(await cli(port, ...command));
  } catch {
    return false;
  }
}

/** Starts the masters, joins them into one cluster (all 16384 slots, no replicas) and waits until every node says it is ok. */
export async function startRedisCluster(ports: readonly number[] = CLUSTER_PORTS): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'jobfleet-redis-cluster-'));
  const servers: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      servers.map(async (server) => {
        if (server.exitCode !== null || server.signalCode !== null) return;
        server.kill('SIGKILL');
        await once(server, 'exit');
      }),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      // Another cluster on the port would answer our pings and be joined instead.
      if (await answers(port, ['ping'], /PONG/)) throw new Error(`port ${port} is taken by another Redis: stop it first`);
      const nodeDir = join(dir, String(port));
      await mkdir(nodeDir);
      // No RDB, no AOF: a test cluster keeps nothing. noeviction: BullMQ needs every key kept.
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', nodeDir, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'];
      args.push('--cluster-node-timeout', '5000', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction');
      servers.push(spawn('redis-server', args, { stdio: 'ignore' }));
    }
    for (const port of ports) await waitFor(() => answers(port, ['ping'], /PONG/), { timeoutMs: 10_000, what: `redis-server on ${port}`, intervalMs: 50 });
    await execFileAsync('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    for (const port of ports) {
      await waitFor(() => answers(port, ['cluster', 'info'], /cluster_state:ok/), { timeoutMs: 20_000, what: `cluster state ok on ${port}`, intervalMs: 100 });
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `redis-cluster://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`, stop };
}

async function main(): Promise<number> {
  const cluster = await startRedisCluster();
  // Interrupted (Ctrl-C, a CI timeout): the cluster goes too.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cluster.stop().finally(() => process.exit(130)));
  try {
    const jest = spawn(NODE, [join(REPO_ROOT, 'node_modules/jest/bin/jest.js'), ...process.argv.slice(2)], {
      cwd: REPO_ROOT,
      stdio: 'inherit',
      env: { ...process.env, REDIS_URL: cluster.url, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-vm-modules`.trim() },
    });
    const [code] = (await once(jest, 'exit')) as [number | null];
    return code ?? 1;
  } finally {
    await cluster.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(await main());
