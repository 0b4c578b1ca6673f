import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import pg from 'pg';
import { DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';
import type { BackupFormat } from './pg-dump';
import { collectTail, splitPassword } from './pg-dump';
import type { BackupTarget } from './target';

export type RestoreCheckMode = 'list' | 'full';

/** Stored in `backups.restore_check`. */
export interface RestoreCheckResult {
  mode: RestoreCheckMode;
  passed: true;
  /** The stored bytes were read back and hash to the recorded sha256. */
  sha256Verified: true;
  /** list: TOC entries (custom) or COPY blocks (plain) found in the archive. */
  entries?: number;
  /** full: rows per restored table (`schema.table`), as counted in the scratch database. */
  tables?: Record<string, number>;
  totalRows?: number;
  /** full: the scratch database it restored into (dropped afterwards). */
  scratchDatabase?: string;
  durationMs: number;
  checkedAt: string;
}

export interface RestoreCheckOptions {
  target: BackupTarget;
  location: string;
  format: BackupFormat;
  /** What the run recorded; the check fails if the stored bytes differ. */
  expectedSha256: string;
  mode: RestoreCheckMode;
  /**
   * full mode: a database on a server where this role may CREATE DATABASE; the scratch database
   * (`jobfleet_restore_check_<random>`) is created next to it and always dropped afterwards.
   */
  scratchServerUrl?: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

// The last lines plain pg_dump writes; a truncated dump lacks them.
const PLAIN_DUMP_TRAILER = '-- PostgreSQL database dump complete';
// Tables counted per check; more are summed into totalRows only.
const MAX_REPORTED_TABLES = 200;

/**
 * Reads a stored backup back and proves it is usable: its sha256 matches, and either its table of
 * contents reads (`list`: `pg_restore --list`, or a complete gzipped SQL script), or it restores
 * into a scratch database whose row counts are reported (`full`).
 */
export async function checkRestore(options: RestoreCheckOptions): Promise<RestoreCheckResult> {
  const started = performance.now();
  const signal = AbortSignal.any([AbortSignal.timeout(options.timeoutMs), ...(options.signal ? [options.signal] : [])]);
  const source = await options.target.open(options.location);
  const hash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  const verify = () => {
    const actual = hash.digest('hex');
    if (actual !== options.expectedSha256) {
      throw new PermanentError('BACKUP_CHECKSUM_MISMATCH', `${options.location} hashes to ${actual}, the run recorded ${options.expectedSha256}`, {
        details: { location: options.location, expected: options.expectedSha256, actual },
      });
    }
  };
  const finish = (result: Omit<RestoreCheckResult, 'sha256Verified' | 'durationMs' | 'checkedAt' | 'mode' | 'passed'>): RestoreCheckResult => ({
    mode: options.mode,
    passed: true,
    sha256Verified: true,
    ...result,
    durationMs: Math.round(performance.now() - started),
    checkedAt: new Date().toISOString(),
  });

  if (options.mode === 'list') {
    if (options.format === 'custom') {
      const listing = await runTool('pg_restore', ['--list'], pipelineInto(source, hashing), signal);
      verify();
      return finish({ entries: listing.split('\n').filter((line) => line.trim() !== '' && !line.startsWith(';')).length });
    }
    const script = await scanPlainScript(source, hashing, signal, options.location);
    verify();
    return finish({ entries: script.copyBlocks });
  }

  if (options.scratchServerUrl === undefined) {
    throw new PermanentError('BACKUP_RESTORE_CHECK_UNCONFIGURED', 'a full restore check needs a scratch server URL');
  }
  const scratch = await createScratchDatabase(options.scratchServerUrl);
  try {
    const { url, password } = splitPassword(scratch.url);
    const env: Record<string, string> = password === undefined ? {} : { PGPASSWORD: password };
    if (options.format === 'custom') {
      await runTool('pg_restore', ['--no-owner', '--no-acl', '--exit-on-error', `--dbname=${url}`], pipelineInto(source, hashing), signal, env);
    } else {
      const gunzip = createGunzip();
      await runTool('psql', ['--no-psqlrc', '--quiet', '-v', 'ON_ERROR_STOP=1', `--dbname=${url}`], pipelineInto(source, hashing, gunzip), signal, env);
    }
    verify();
    return finish({ ...(await countRows(scratch.url)), scratchDatabase: scratch.name });
  } finally {
    await scratch.drop();
  }
}

/** `source` through the given transforms, as one readable for a child's stdin. */
function pipelineInto(source: Readable, ...transforms: Transform[]): Readable {
  const out = new PassThrough();
  const streams: NodeJS.ReadWriteStream[] = [...transforms, out];
  pipeline([source, ...streams]).catch((error: unknown) => out.destroy(error as Error));
  return out;
}

/**
 * Runs a PostgreSQL client tool with `input` as stdin; resolves with its stdout. The input is read
 * to its end even when the tool stops reading early, so the caller's hash sees every byte.
 */
async function runTool(
  command: string,
  args: string[],
  input: Readable,
  signal: AbortSignal,
  env: Record<string, string> = {},
): Promise<string> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'], signal, killSignal: 'SIGKILL' });
  const stdout: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  const stderr = collectTail(child.stderr);
  let stdinOpen = true;
  child.stdin.on('error', () => {
    stdinOpen = false;
  });
  const feed = pipeline(
    input,
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        if (!stdinOpen || !child.stdin.writable || child.stdin.write(chunk)) {
          done();
          return;
        }
        const resume = () => {
          child.stdin.off('drain', resume);
          child.stdin.off('close', resume);
          done();
        };
        child.stdin.on('drain', resume);
        child.stdin.on('close', resume);
      },
      final(done) {
        child.stdin.end();
        done();
      },
    }),
  );
  const exit = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  const [fed, exited] = await Promise.allSettled([feed, exit]);
  if (signal.aborted) {
    throw new DependencyUnavailableError(command, `restore check stopped: ${String(signal.reason)}`, { cause: signal.reason });
  }
  if (exited.status === 'rejected') {
    throw new DependencyUnavailableError(command, `could not run ${command}: ${(exited.reason as Error).message}`, { cause: exited.reason });
  }
  if (fed.status === 'rejected') {
    throw new DependencyUnavailableError('backup-target', `reading the backup failed: ${(fed.reason as Error).message}`, { cause: fed.reason });
  }
  if (exited.value !== 0) {
    const stderrTail = stderr();
    throw new PermanentError('BACKUP_RESTORE_CHECK_FAILED', `${command} exited with code ${String(exited.value)}: ${stderrTail.trim()}`, {
      details: { command, exitCode: exited.value, stderr: stderrTail },
    });
  }
  return Buffer.concat(stdout).toString('utf8');
}

/** Gunzips a plain dump, counting COPY blocks and requiring pg_dump's completion trailer. */
async function scanPlainScript(source: Readable, hashing: Transform, signal: AbortSignal, location: string): Promise<{ copyBlocks: number }> {
  let copyBlocks = 0;
  let carry = '';
  let tail = '';
  try {
    await pipeline(
      source,
      hashing,
      createGunzip(),
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          const text = carry + chunk.toString('utf8');
          const lines = text.split('\n');
          carry = lines.pop() ?? '';
          for (const line of lines) if (line.startsWith('COPY ')) copyBlocks++;
          tail = (tail + text).slice(-1024);
          done();
        },
      }),
      { signal },
    );
  } catch (cause) {
    if (signal.aborted) throw new DependencyUnavailableError('backup-target', `restore check stopped: ${String(signal.reason)}`, { cause });
    throw new PermanentError('BACKUP_RESTORE_CHECK_FAILED', `${location} is not a readable gzip file: ${(cause as Error).message}`, { cause });
  }
  if (!tail.includes(PLAIN_DUMP_TRAILER)) {
    throw new PermanentError('BACKUP_RESTORE_CHECK_FAILED', `${location} lacks pg_dump's completion line: the dump is truncated`);
  }
  return { copyBlocks };
}

/**
 * A client of its own on the scratch server. A socket that breaks while no query waits on it
 * emits 'error', which without a listener kills the worker; its queries fail with the error anyway.
 */
function scratchClient(url: string): pg.Client {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  return client;
}

async function createScratchDatabase(serverUrl: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `jobfleet_restore_check_${randomBytes(6).toString('hex')}`;
  const admin = async (sql: string) => {
    const client = scratchClient(serverUrl);
    try {
      await client.connect();
      await client.query(sql);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  try {
    await admin(`create database ${name}`);
  } catch (cause) {
    throw new DependencyUnavailableError('postgres', `could not create the scratch database: ${(cause as Error).message}`, { cause });
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { name, url: url.toString(), drop: () => admin(`drop database if exists ${name} with (force)`) };
}

async function countRows(url: string): Promise<{ tables: Record<string, number>; totalRows: number }> {
  const client = scratchClient(url);
  await client.connect();
  try {
    const { rows } = await client.query<{ schema: string; name: string }>(
      `select table_schema as schema, table_name as name from information_schema.tables
        where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')
        order by 1, 2`,
    );
    const tables: Record<string, number> = {};
    let totalRows = 0;
    for (const [index, table] of rows.entries()) {
      const ident = `${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.name)}`;
      const count = Number((await client.query<{ n: string }>(`select count(*) as n from ${ident}`)).rows[0]?.n ?? 0);
      totalRows += count;
      if (index < MAX_REPORTED_TABLES) tables[`${table.schema}.${table.name}`] = count;
    }
    return { tables, totalRows };
  } finally {
    await client.end();
  }
}
