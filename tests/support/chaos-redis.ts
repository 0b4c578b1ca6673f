import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './processes';

const execFileAsync = promisify(execFile);

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /**
   * `shutdown`: the SHUTDOWN command, which writes and fsyncs the AOF before exiting (a planned
   * restart). `crash`: SIGKILL of the process (see redis-restart.test.ts for what survives it).
   */
  stop(mode: 'shutdown' | 'crash'): Promise<void>;
  /** Starts it again on the same port and directory; resolves once it answers PING (AOF loaded). */
  start(): Promise<void>;
  /** Everything it logged, across restarts. */
  output(): string;
  /** Kills it and removes its directory. */
  close(): Promise<void>;
}

/**
 * A private redis-server on 127.0.0.1:`port` with AOF persistence (appendfsync everysec, no RDB
 * snapshots), as production runs it, so a test can stop and restart it without touching the
 * shared Redis. `appendonly: false` keeps nothing (a benchmark's instance).
 */
export async function startRedisServer(port: number, options: { appendonly?: boolean } = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'jobfleet-chaos-redis-'));
  const configFile = join(dir, 'redis.conf');
  await writeFile(
    configFile,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `appendonly ${options.appendonly === false ? 'no' : 'yes'}`,
      'appendfsync everysec',
      'save ""',
      'daemonize no',
      'logfile ""',
      // BullMQ needs every key kept.
      'maxmemory-policy noeviction',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';

  const ping = async () => {
    try {
      return (await execFileAsync('redis-cli', ['-p', String(port), 'ping'], { timeout: 2000 })).stdout.trim() === 'PONG';
    } catch {
      return false;
    }
  };

  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      const started = spawn('redis-server', [configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = started;
      exited = new Promise((resolve) => started.once('exit', () => resolve()));
      started.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      started.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      // Redis answers LOADING instead of PONG while it replays the AOF.
      await waitFor(ping, { timeoutMs: 10_000, what: `redis-server on port ${port}\n${output}`, intervalMs: 50 });
    },
    async stop(mode) {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      if (mode === 'crash') child.kill('SIGKILL');
      // The connection closes without a reply when SHUTDOWN succeeds: redis-cli exits non-zero then.
      else await execFileAsync('redis-cli', ['-p', String(port), 'shutdown']).catch(() => undefined);
      await exited;
    },
    output: () => output,
    async close() {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await server.start();
  } catch (error) {
    await server.close();
    throw error;
  }
  return server;
}

/** What the memory helpers need of a Redis client (ioredis' info and config). */
interface MemoryControl {
  info(section: 'memory'): Promise<string>;
  config(subcommand: 'SET', parameter: string, value: string): Promise<unknown>;
  set(key: string, value: Buffer): Promise<unknown>;
}

/**
 * Fills a Redis of a test's own with a 64 MiB value, so that its used memory is large beside what
 * connections and jobs add or free meanwhile: a ratio set with `setMemoryRatio` then stays within
 * a degradation threshold's band instead of drifting over it with the client buffers.
 */
export async function addMemoryBallast(redis: MemoryControl): Promise<void> {
  const ballast = Buffer.alloc(64 * 1024 * 1024, 1);
  // Retried until the client is connected (without an offline queue it refuses until then).
  await waitFor(() => redis.set('test:memory-ballast', ballast).then(() => true, () => false), { timeoutMs: 10_000, what: 'the memory ballast written' });
}

/** Sets maxmemory so that used_memory is `ratio` of it (0: no limit). */
export async function setMemoryRatio(redis: MemoryControl, ratio: number): Promise<void> {
  const used = Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
  await redis.config('SET', 'maxmemory', ratio === 0 ? '0' : String(Math.ceil(used / ratio)));
}
