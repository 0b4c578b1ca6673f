import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import type { Logger } from '@jobfleet/observability';
import { createRedisConnection, waitUntilReady } from '@jobfleet/queue';

export interface ResolvedRedis {
  url: string;
  /** Where it came from, for the start banner. */
  source: 'REDIS_URL' | 'local default' | 'started redis-server';
  stop(): Promise<void>;
}

const LOCAL_DEFAULT = 'redis://127.0.0.1:6379';

/**
 * `npm start` must work on a laptop: REDIS_URL if set, else a Redis on the default local port,
 * else a redis-server from PATH started on a free port with its data under dataDir.
 */
export async function resolveRedis(options: {
  url: string | undefined;
  dataDir: string;
  logger: Logger;
  /** Where a developer's Redis usually listens; tests point it at a closed port. */
  localDefault?: string;
}): Promise<ResolvedRedis> {
  const noop = async () => undefined;
  const localDefault = options.localDefault ?? LOCAL_DEFAULT;
  if (options.url) return { url: options.url, source: 'REDIS_URL', stop: noop };
  if (await answersPing(localDefault)) return { url: localDefault, source: 'local default', stop: noop };

  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'No Redis found: set REDIS_URL, run Redis on 127.0.0.1:6379, or install redis-server ' +
        '(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) so `npm start` can launch one.',
    );
  }
  const port = await freePort();
  const dir = resolve(options.dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  // AOF so jobs accepted in development survive a restart, as they would in production.
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', ''],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50 && !(await answersPing(url)); i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await answersPing(url))) {
    child.kill('SIGKILL');
    throw new Error(`redis-server started on port ${port} but does not answer`);
  }
  options.logger.info({ port, dir }, 'started a local redis-server');
  return { url, source: 'started redis-server', stop: () => stopChild(child) };
}

async function answersPing(url: string): Promise<boolean> {
  const redis = createRedisConnection(url, 'producer', { name: 'probe' });
  try {
    if (!(await waitUntilReady(redis, 1000))) return false;
    await redis.ping(); // answers PONG or throws
    return true;
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((done) => {
    child.once('exit', () => done());
    child.kill('SIGTERM');
  });
}
