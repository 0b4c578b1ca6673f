import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';
import { BackupTimeoutError } from './errors';

export interface PgDumpOptions {
  /** postgres:// URL; its password is moved to PGPASSWORD so it never appears in `ps`. */
  databaseUrl: string;
  /** `custom` (-Fc, already compressed, restorable with pg_restore) or `plain` (-Fp, gzipped here). */
  format: 'custom' | 'plain';
  directory: string;
  /** File name without extension; must be unique per run (e.g. derived from the job id). */
  name: string;
  /** Whole-run deadline, dump and write included. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Default: `pg_dump` from PATH. */
  pgDumpPath?: string;
}

export interface PgDumpResult {
  /** Absolute or directory-relative path of the final `.dump` / `.sql.gz` file. */
  location: string;
  /** Size of the file on disk (after gzip for plain). */
  bytes: number;
  /** Hex sha256 of the file on disk. */
  sha256: string;
  durationMs: number;
}

// Enough to hold pg_dump's final error lines without letting a chatty run grow memory.
const STDERR_TAIL_BYTES = 8 * 1024;
const KILL_GRACE_MS = 2000;
// Messages that will fail the same way on every retry.
const PERMANENT_STDERR =
  /database "[^"]*" does not exist|role "[^"]*" does not exist|password authentication failed|no password supplied|authentication failed/i;

/** Streams one pg_dump into `<directory>/<name>.partial`, renaming it to the final name only on success. */
export async function runPgDump(options: PgDumpOptions): Promise<PgDumpResult> {
  const started = performance.now();
  if (options.name === '' || basename(options.name) !== options.name) {
    throw new PermanentError('BACKUP_INVALID_NAME', `backup name must be a plain file name: ${JSON.stringify(options.name)}`);
  }
  const { url, password } = splitPassword(options.databaseUrl);
  const elapsed = () => Math.round(performance.now() - started);
  if (options.signal?.aborted) throw new BackupTimeoutError('aborted', 0);

  const partial = join(options.directory, `${options.name}.partial`);
  const location = join(options.directory, `${options.name}${options.format === 'custom' ? '.dump' : '.sql.gz'}`);
  const stop = new AbortController();
  let stopReason: 'timeout' | 'aborted' | undefined;
  const halt = (reason: 'timeout' | 'aborted') => {
    stopReason ??= reason;
    stop.abort();
  };
  const timer = setTimeout(() => halt('timeout'), options.timeoutMs);
  const onCallerAbort = () => halt('aborted');
  options.signal?.addEventListener('abort', onCallerAbort, { once: true });

  const env = { ...process.env };
  if (password !== undefined) env.PGPASSWORD = password;
  const child = spawn(
    options.pgDumpPath ?? 'pg_dump',
    [`--dbname=${url}`, options.format === 'custom' ? '-Fc' : '-Fp', '--no-password'],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stderr = collectTail(child.stderr);
  let killTimer: NodeJS.Timeout | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  }).finally(() => clearTimeout(killTimer));
  stop.signal.addEventListener(
    'abort',
    () => {
      child.kill('SIGTERM');
      // pg_dump blocked in libpq may not act on SIGTERM promptly.
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    },
    { once: true },
  );

  const hash = createHash('sha256');
  let bytes = 0;
  const measure = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  // flush: fsync before close, so the rename below never publishes an unwritten file.
  const out = createWriteStream(partial, { flush: true });
  let renamed = false;
  const written =
    options.format === 'plain'
      ? pipeline(child.stdout, createGzip(), measure, out, { signal: stop.signal })
      : pipeline(child.stdout, measure, out, { signal: stop.signal });

  try {
    const [pipe, exit] = await Promise.allSettled([written, exited]);
    if (stopReason !== undefined) throw new BackupTimeoutError(stopReason, elapsed());
    if (exit.status === 'rejected') {
      throw new PermanentError('BACKUP_PG_DUMP_FAILED', `could not start pg_dump: ${errorMessage(exit.reason)}`, {
        cause: exit.reason,
      });
    }
    const { code, signal } = exit.value;
    if (code !== 0) {
      const tail = stderr();
      const message = `pg_dump exited with ${code === null ? `signal ${signal}` : `code ${code}`}: ${tail.trim()}`;
      const details = { exitCode: code, signal, stderr: tail };
      if (PERMANENT_STDERR.test(tail)) throw new PermanentError('BACKUP_PG_DUMP_FAILED', message, { details });
      throw new DependencyUnavailableError('postgres', message, { details });
    }
    if (pipe.status === 'rejected') {
      throw new DependencyUnavailableError('backup-directory', `writing ${partial} failed: ${errorMessage(pipe.reason)}`, {
        cause: pipe.reason,
      });
    }
    await rename(partial, location);
    renamed = true;
    await fsyncDirectory(options.directory);
    return { location, bytes, sha256: hash.digest('hex'), durationMs: elapsed() };
  } catch (error) {
    // The caller must never see a half-written dump under either name.
    if (!child.killed && child.exitCode === null) child.kill('SIGKILL');
    await exited.catch(() => undefined);
    await rm(partial, { force: true });
    if (renamed) await rm(location, { force: true });
    throw error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onCallerAbort);
  }
}

function splitPassword(databaseUrl: string): { url: string; password: string | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(databaseUrl);
  } catch (cause) {
    throw new PermanentError('BACKUP_INVALID_DATABASE_URL', 'databaseUrl is not a valid URL', { cause });
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new PermanentError('BACKUP_INVALID_DATABASE_URL', `unsupported protocol ${parsed.protocol}`);
  }
  const password =
    parsed.password !== '' ? decodeURIComponent(parsed.password) : (parsed.searchParams.get('password') ?? undefined);
  parsed.password = '';
  parsed.searchParams.delete('password');
  return { url: parsed.toString(), password };
}

/** Keeps only the last STDERR_TAIL_BYTES written to the stream. */
function collectTail(stream: Readable): () => string {
  let tail = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    tail = Buffer.concat([tail, chunk]);
    if (tail.length > STDERR_TAIL_BYTES) tail = tail.subarray(tail.length - STDERR_TAIL_BYTES);
  });
  return () => tail.toString('utf8');
}

async function fsyncDirectory(directory: string): Promise<void> {
  // Makes the rename itself durable; the file's data was flushed before close.
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
