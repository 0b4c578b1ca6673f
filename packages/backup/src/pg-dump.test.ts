import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import pg from 'pg';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';
import { startTracing } from '@jobfleet/observability/tracing';
import { withClient } from '../../../tests/support/backup';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { BackupTimeoutError } from './errors';
import { runPgDump } from './pg-dump';
import { createFilesystemTarget } from './targets/filesystem';

const execFileAsync = promisify(execFile);
const ROWS = 1000;


async function countRows(url: string): Promise<number> {
  return withClient(url, async (c) => Number((await c.query<{ n: string }>('select count(*) as n from backup_seed')).rows[0]?.n));
}

describe('runPgDump', () => {
  let source: TestDatabase;
  let directory: string;
  beforeAll(async () => {
    source = await createTestDatabase();
    await withClient(source.url, async (c) => {
      await c.query('create table backup_seed (id int primary key, label text not null)');
      await c.query(`insert into backup_seed select g, 'row ' || g from generate_series(1, ${ROWS}) g`);
    });
  });
  afterAll(async () => {
    await source.drop();
  });
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'jobfleet-backup-'));
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('writes a custom-format dump whose size and sha256 match the file and which restores every row', async () => {
    const result = await runPgDump({ databaseUrl: source.url, format: 'custom', target: createFilesystemTarget({ directory }), name: 'nightly-1', timeoutMs: 30_000 });

    expect(result.location).toBe(join(directory, 'nightly-1.dump'));
    expect(await readdir(directory)).toEqual(['nightly-1.dump']);
    const onDisk = await readFile(result.location);
    expect(result.bytes).toBe(onDisk.length);
    expect((await stat(result.location)).size).toBe(result.bytes);
    expect(result.sha256).toBe(createHash('sha256').update(onDisk).digest('hex'));
    expect(result.durationMs).toBeGreaterThanOrEqual(0);

    const target = await createTestDatabase();
    try {
      // The target is cloned from the migrated template, so only the seeded table is restored.
      await execFileAsync('pg_restore', ['--no-owner', '--exit-on-error', '--table=backup_seed', `--dbname=${target.url}`, result.location]);
      expect(await countRows(target.url)).toBe(ROWS);
    } finally {
      await target.drop();
    }
  });

  it('is a pg_dump span under the job\'s span, naming the database and the exit code, never the URL', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = startTracing({ config: { tracesUrl: undefined, serviceName: undefined, sampler: 'always_on', ratio: 1 }, serviceName: 'test', exporter });
    try {
      const job = await trace.getTracer('test').startActiveSpan('job', async (span) => {
        await runPgDump({ databaseUrl: source.url, format: 'custom', target: createFilesystemTarget({ directory }), name: 'traced', timeoutMs: 30_000 });
        span.end();
        return span.spanContext();
      });
      const dump = exporter.getFinishedSpans().find((span) => span.name === 'pg_dump');
      expect(dump?.parentSpanContext?.spanId).toBe(job.spanId);
      expect(dump?.attributes).toEqual({
        'process.executable.name': 'pg_dump',
        'db.system.name': 'postgresql',
        'db.namespace': new URL(source.url).pathname.slice(1),
        'process.exit.code': 0,
        'jobfleet.backup.bytes': expect.any(Number),
      });
    } finally {
      await tracing?.shutdown();
    }
  });

  it('writes a plain-format dump as .sql.gz that gunzips to SQL containing the table', async () => {
    const result = await runPgDump({ databaseUrl: source.url, format: 'plain', target: createFilesystemTarget({ directory }), name: 'nightly-2', timeoutMs: 30_000 });

    expect(result.location).toBe(join(directory, 'nightly-2.sql.gz'));
    expect(await readdir(directory)).toEqual(['nightly-2.sql.gz']);
    const gzipped = await readFile(result.location);
    expect(result.bytes).toBe(gzipped.length);
    expect(result.sha256).toBe(createHash('sha256').update(gzipped).digest('hex'));
    const sql = gunzipSync(gzipped).toString('utf8');
    expect(sql).toContain('CREATE TABLE public.backup_seed');
    expect(sql).toContain(`${ROWS}\trow ${ROWS}`);
  });

  it('fails permanently on a database that does not exist and leaves no file behind', async () => {
    const url = new URL(source.url);
    url.pathname = '/jobfleet_no_such_database';

    const failure = runPgDump({ databaseUrl: url.toString(), format: 'custom', target: createFilesystemTarget({ directory }), name: 'missing', timeoutMs: 30_000 });

    await expect(failure).rejects.toBeInstanceOf(PermanentError);
    await expect(failure).rejects.toMatchObject({ code: 'BACKUP_PG_DUMP_FAILED', message: expect.stringContaining('does not exist') });
    expect(await readdir(directory)).toEqual([]);
  });

  it('reports an unreachable server as a retryable dependency failure', async () => {
    const url = new URL(source.url);
    url.hostname = '127.0.0.1';
    url.port = '1';

    const failure = runPgDump({ databaseUrl: url.toString(), format: 'plain', target: createFilesystemTarget({ directory }), name: 'unreachable', timeoutMs: 30_000 });

    await expect(failure).rejects.toBeInstanceOf(DependencyUnavailableError);
    expect(await readdir(directory)).toEqual([]);
  });

  it('kills pg_dump blocked on a locked table when the timeout passes and leaves no file behind', async () => {
    const holder = new pg.Client({ connectionString: source.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table backup_seed in access exclusive mode');

      const started = Date.now();
      const failure = runPgDump({ databaseUrl: source.url, format: 'custom', target: createFilesystemTarget({ directory }), name: 'blocked', timeoutMs: 1000 });

      await expect(failure).rejects.toBeInstanceOf(BackupTimeoutError);
      await expect(failure).rejects.toMatchObject({ reason: 'timeout', retryable: true });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await readdir(directory)).toEqual([]);
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
  });

  it('stops when the caller aborts and leaves no file behind', async () => {
    const controller = new AbortController();
    const failure = runPgDump({ databaseUrl: source.url, format: 'plain', target: createFilesystemTarget({ directory }), name: 'aborted', timeoutMs: 30_000, signal: controller.signal });
    controller.abort();

    await expect(failure).rejects.toMatchObject({ code: 'BACKUP_TIMEOUT', reason: 'aborted' });
    expect(await readdir(directory)).toEqual([]);
  });

  it('passes the password through PGPASSWORD, never on the command line', async () => {
    // A stand-in pg_dump that dumps its own argv and PGPASSWORD as the "backup".
    const fake = join(directory, 'fake-pg-dump.sh');
    await writeFile(fake, '#!/bin/sh\necho "args: $*"\necho "password: $PGPASSWORD"\n');
    await chmod(fake, 0o755);

    const result = await runPgDump({
      databaseUrl: 'postgres://backup:s%3Ecret@db.internal:5432/app',
      format: 'plain',
      target: createFilesystemTarget({ directory }),
      name: 'secret',
      timeoutMs: 30_000,
      pgDumpPath: fake,
    });

    const output = gunzipSync(await readFile(result.location)).toString('utf8');
    expect(output).toContain('args: --dbname=postgres://backup@db.internal:5432/app -Fp --no-password');
    expect(output).toContain('password: s>cret');
  });

  it('rejects a name that would escape the directory', async () => {
    await expect(
      runPgDump({ databaseUrl: source.url, format: 'custom', target: createFilesystemTarget({ directory }), name: '../escape', timeoutMs: 30_000 }),
    ).rejects.toMatchObject({ code: 'BACKUP_INVALID_NAME' });
  });
});
