import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { DependencyUnavailableError, JobfleetError, PermanentError } from '@jobfleet/contracts';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { BackupTimeoutError } from './errors';
import type { BackupTarget, BackupUpload } from './target';

export interface PgDumpOptions {
  /** postgres:// URL; its password is moved to PGPASSWORD so it never appears in `ps`. */
  databaseUrl: string;
  /** `custom` (-Fc, already compressed, restorable with pg_restore) or `plain` (-Fp, gzipped here). */
  format: BackupFormat;
  target: BackupTarget;
  /** File name without extension; must be unique per run (e.g. derived from the job id). */
  name: string;
  /** Whole-run deadline, dump and upload included. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Default: `pg_dump` from PATH. */
  pgDumpPath?: string;
  /** Runs once the dump is fully written, before it becomes visible at `location`; throwing discards it. */
  beforeCommit?: (location: string) => Promise<void>;
}

export type BackupFormat = 'custom' | 'plain';

export interface PgDumpResult {
  /** Where the target put the finished file (path or s3:// URL). */
  location: string;
  /** Size as stored (after gzip for plain). */
  bytes: number;
  /** Hex sha256 of the stored bytes. */
  sha256: string;
  durationMs: number;
}

// Enough to hold pg_dump's final error lines without letting a chatty run grow memory.
const STDERR_TAIL_BYTES = 8 * 1024;
const KILL_GRACE_MS = 2000;
// Messages that will fail the same way on every retry.
const PERMANENT_STDERR =
  /database "[^"]*" does not exist|role "[^"]*" does not exist|password authentication failed|no password supplied|authentication failed/i;

export const backupFileName = (name: string, format: BackupFormat): string => `${name}${format === 'custom' ? '.dump' : '.sql.gz'}`;

/**
 * Streams one pg_dump into the target (through gzip for plain) while hashing it; the file becomes
 * visible under its final name only after the dump and the write both succeeded. With tracing on,
 * the run is a `pg_dump` span (the database's name, the exit code and the bytes; never the URL).
 */
export async function runPgDump(options: PgDumpOptions): Promise<PgDumpResult> {
  const database = databaseName(options.databaseUrl);
  const attributes = { 'process.executable.name': 'pg_dump', 'db.system.name': 'postgresql', ...(database ? { 'db.namespace': database } : {}) };
  return trace.getTracer('jobfleet-backup').startActiveSpan('pg_dump', { attributes }, async (span) => {
    try {
      const result = await dumpToTarget(options);
      span.setAttribute('jobfleet.backup.bytes', result.bytes);
      return result;
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof JobfleetError ? error.code : 'UNEXPECTED' });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The database a postgres:// URL names, if it parses. */
function databaseName(databaseUrl: string): string | undefined {
  try {
    return decodeURIComponent(new URL(databaseUrl).pathname.slice(1)) || undefined;
  } catch {
    return undefined;
  }
}

async function dumpToTarget(options: PgDumpOptions): Promise<PgDumpResult> {
  const started = performance.now();
  if (options.name === '' || basename(options.name) !== options.name) {
    throw new PermanentError('BACKUP_INVALID_NAME', `backup name must be a plain file name: ${JSON.stringify(options.name)}`);
  }
  const { url, password } = splitPassword(options.databaseUrl);
  const elapsed = () => Math.round(performance.now() - started);
  if (options.signal?.aborted) throw new BackupTimeoutError('aborted', 0);

  const stop = new AbortController();
  let stopReason: 'timeout' | 'aborted' | undefined;
  const halt = (reason: 'timeout' | 'aborted') => {
    stopReason ??= reason;
    stop.abort();
  };
  const timer = setTimeout(() => halt('timeout'), options.timeoutMs);
  const onCallerAbort = () => halt('aborted');
  options.signal?.addEventListener('abort', onCallerAbort, { once: true });
  let upload: BackupUpload | undefined;
  let child: ChildProcess | undefined;
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;

  try {
    upload = await options.target.begin(backupFileName(options.name, options.format));
    const env = { ...process.env };
    if (password !== undefined) env.PGPASSWORD = password;
    const dump = spawn(
      options.pgDumpPath ?? 'pg_dump',
      [`--dbname=${url}`, options.format === 'custom' ? '-Fc' : '-Fp', '--no-password'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = dump;
    const stderr = collectTail(dump.stderr);
    let killTimer: NodeJS.Timeout | undefined;
    exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      dump.once('error', reject);
      dump.once('close', (code, signal) => resolve({ code, signal }));
    }).finally(() => clearTimeout(killTimer));
    const onStop = () => {
      dump.kill('SIGTERM');
      // pg_dump blocked in libpq may not act on SIGTERM promptly.
      killTimer = setTimeout(() => dump.kill('SIGKILL'), KILL_GRACE_MS);
    };
    if (stop.signal.aborted) onStop();
    else stop.signal.addEventListener('abort', onStop, { once: true });

    const hash = createHash('sha256');
    let bytes = 0;
    const measure = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    const written =
      options.format === 'plain'
        ? pipeline(dump.stdout, createGzip(), measure, upload.stream, { signal: stop.signal })
        : pipeline(dump.stdout, measure, upload.stream, { signal: stop.signal });

    const [pipe, exit] = await Promise.allSettled([written, exited]);
    if (stopReason !== undefined) throw new BackupTimeoutError(stopReason, elapsed());
    if (exit.status === 'rejected') {
      throw new PermanentError('BACKUP_PG_DUMP_FAILED', `could not start pg_dump: ${errorMessage(exit.reason)}`, {
        cause: exit.reason,
      });
    }
    // A target that refused the write (S3 403, say) kills pg_dump with SIGPIPE: its error is the cause.
    if (pipe.status === 'rejected' && pipe.reason instanceof JobfleetError) throw pipe.reason;
    const { code, signal } = exit.value;
    if (code !== null) trace.getActiveSpan()?.setAttribute('process.exit.code', code);
    if (code !== 0) {
      const tail = stderr();
      const message = `pg_dump exited with ${code === null ? `signal ${String(signal)}` : `code ${code}`}: ${tail.trim()}`;
      const details = { exitCode: code, signal, stderr: tail };
      if (PERMANENT_STDERR.test(tail)) throw new PermanentError('BACKUP_PG_DUMP_FAILED', message, { details });
      throw new DependencyUnavailableError('postgres', message, { details });
    }
    if (pipe.status === 'rejected') {
      throw new DependencyUnavailableError(options.target.kind, `writing to ${options.target.description} failed: ${errorMessage(pipe.reason)}`, {
        cause: pipe.reason,
      });
    }
    await options.beforeCommit?.(upload.location);
    const location = await upload.commit();
    return { location, bytes, sha256: hash.digest('hex'), durationMs: elapsed() };
  } catch (error) {
    // The caller must never see a half-written dump under either name.
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited?.catch(() => undefined);
    await upload?.abort();
    throw error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onCallerAbort);
  }
}

/** The URL without its password, and the password (for PGPASSWORD): never on a command line. */
export function splitPassword(databaseUrl: string): { url: string; password: string | undefined } {
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

/** Keeps only the last STDERR_TAIL_BYTES written to the stream (a client tool's final error lines). */
export function collectTail(stream: Readable): () => string {
  let tail = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    tail = Buffer.concat([tail, chunk]);
    if (tail.length > STDERR_TAIL_BYTES) tail = tail.subarray(tail.length - STDERR_TAIL_BYTES);
  });
  return () => tail.toString('utf8');
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
