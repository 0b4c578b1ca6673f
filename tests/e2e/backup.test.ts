import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, readdir, readFile, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { backupRepository, type BackupRow } from '@jobfleet/db';
import { createLogger, createMetrics } from '@jobfleet/observability';
import { startWorkers, type WorkerFleet } from '@jobfleet/worker';
import { loadConfig } from '@jobfleet/config';
import { startFakeS3 } from '@jobfleet/backup/fake-s3';
import pg from 'pg';
import { backupDirectory, countRows, createOperatorKey, createEmptyDatabase, seedBackupSource } from '../support/backup';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { ADMIN_DATABASE_URL } from '../support/env';
import { startEntryPoint, waitFor } from '../support/processes';
import { connectTestRedis, TEST_REDIS_URL } from '../support/redis';
import { startTestSystem, type TestSystem } from '../support/system';

const execFileAsync = promisify(execFile);
const SEED = { customers: 300, orders: 5000 };
const SEED_TABLES = ['customers', 'orders'];

const sha256Of = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

interface BackupSystem {
  system: TestSystem;
  directory: string;
  adminKey: string;
  close(): Promise<void>;
}

/** A test system whose workers know `definitions`, all writing to one local directory. */
async function startBackupSystem(label: string, definitions: object[], env: Record<string, string> = {}): Promise<BackupSystem> {
  const directory = await backupDirectory();
  const system = await startTestSystem({
    label,
    env: {
      BACKUP_TARGETS: JSON.stringify({ local: { type: 'filesystem', directory } }),
      BACKUP_DEFINITIONS: JSON.stringify(definitions),
      BACKUP_RESTORE_SCRATCH_URL: ADMIN_DATABASE_URL,
      ...env,
    },
  });
  const adminKey = await createOperatorKey(system.testDb.database.db, system.tenantId);
  return {
    system,
    directory,
    adminKey,
    async close() {
      await system.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

function requestBackup(backups: BackupSystem, body: object, idempotencyKey = randomBytes(6).toString('hex'), key = backups.adminKey) {
  return backups.system.api.inject({
    method: 'POST',
    url: '/v1/jobs/backup',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
    payload: JSON.stringify(body),
  });
}

async function rowsOf(backups: BackupSystem, definition: string): Promise<BackupRow[]> {
  const rows = await backupRepository.list(backups.system.testDb.database.db, { limit: 1000 });
  return rows.filter((r) => r.schedule === definition);
}

async function waitForRuns(backups: BackupSystem, definition: string, count: number, timeoutMs = 60_000): Promise<BackupRow[]> {
  return waitFor(
    async () => {
      const done = (await rowsOf(backups, definition)).filter((r) => r.status !== 'running');
      return done.length >= count ? done : undefined;
    },
    { timeoutMs, what: `${count} finished runs of ${definition}`, intervalMs: 200 },
  );
}

/**
 * The definition's runs, oldest first, once their statuses are `expected`: retention marks rows
 * pruned just after the newest run's row says succeeded.
 */
async function waitForStatuses(backups: BackupSystem, definition: string, expected: readonly string[]): Promise<BackupRow[]> {
  return waitFor(
    async () => {
      const rows = (await rowsOf(backups, definition)).sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
      return rows.map((r) => r.status).join() === expected.join() ? rows : undefined;
    },
    { timeoutMs: 30_000, what: `runs of ${definition} to be ${expected.join(', ')}`, intervalMs: 200 },
  );
}

/** Most runs whose [startedAt, finishedAt] intervals overlap at one instant. */
function maxOverlap(rows: readonly BackupRow[]): number {
  const edges = rows.flatMap((r) => [
    { at: r.startedAt.getTime(), delta: 1 },
    { at: (r.finishedAt ?? new Date()).getTime(), delta: -1 },
  ]);
  // Ends before starts at the same millisecond: touching intervals do not overlap.
  edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let running = 0;
  let most = 0;
  for (const edge of edges) {
    running += edge.delta;
    most = Math.max(most, running);
  }
  return most;
}

describe('backups end to end (real pg_dump, pg_restore, Postgres and BullMQ)', () => {
  let source: TestDatabase;
  beforeAll(async () => {
    source = await createTestDatabase();
    await seedBackupSource(source.url, SEED);
  });
  afterAll(async () => {
    await source.drop();
  });

  it('a scheduled backup writes a file whose sha256 matches its row and which restores with the same row counts', async () => {
    const backups = await startBackupSystem('backup-scheduled', [
      { name: 'seeded', databaseUrl: source.url, target: 'local', cron: '*/2 * * * * *', restoreCheck: 'full' },
    ]);
    const restored = await createEmptyDatabase(`jobfleet_t_restore_${randomBytes(4).toString('hex')}`);
    try {
      const [row] = await waitFor(
        async () => {
          const done = (await rowsOf(backups, 'seeded')).filter((r) => r.status === 'succeeded');
          return done.length > 0 ? done : undefined;
        },
        { timeoutMs: 30_000, what: 'a scheduled backup' },
      );
      if (!row?.location || !row.slot) throw new Error(`incomplete row ${JSON.stringify(row)}`);

      // A scheduled run: slot on the cron's 2-second grid, file named after the definition and slot.
      expect(row.slot.getTime() % 2000).toBe(0);
      expect(row.jobId).toBe(`repeat:backup.seeded:${row.slot.getTime()}`);
      expect(basename(row.location)).toMatch(/^seeded\.\d{8}T\d{6}Z\.[0-9a-f]{8}\.dump$/);
      expect(await sha256Of(row.location)).toBe(row.sha256);
      expect((await readFile(row.location)).length).toBe(row.bytes);
      // The run's own full restore check counted the rows in its scratch database.
      expect(row.restoreCheck).toMatchObject({
        mode: 'full',
        sha256Verified: true,
        tables: { 'public.customers': SEED.customers, 'public.orders': SEED.orders },
      });

      // And an independent restore of the file into an empty database gives the same counts.
      await execFileAsync('pg_restore', ['--no-owner', '--exit-on-error', `--dbname=${restored.url}`, row.location]);
      expect(await countRows(restored.url, SEED_TABLES)).toEqual(await countRows(source.url, SEED_TABLES));
      expect(await countRows(restored.url, SEED_TABLES)).toEqual({ customers: SEED.customers, orders: SEED.orders });

      const metrics = await backups.system.api.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.statusCode).toBe(200);

      // The job admin API finds the run's job, which no API request created, by its definition.
      const scheduledJob = await waitFor(
        async () => {
          const answer = await backups.system.api.inject({
            method: 'GET',
            url: `/v1/admin/jobs?kind=backup&businessKey=seeded&id=${encodeURIComponent(row.jobId ?? '')}`,
            headers: { authorization: `Bearer ${backups.adminKey}` },
          });
          const [item] = answer.json<{ items: { state: string }[] }>().items;
          return item?.state === 'completed' ? item : undefined;
        },
        { timeoutMs: 10_000, what: "the scheduled run's job row" },
      );
      expect(scheduledJob).toMatchObject({ kind: 'backup', id: row.jobId, tenantId: null, businessKey: 'seeded', idempotencyKey: null, attempts: 1 });
    } finally {
      await restored.drop();
      await backups.close();
    }
  });

  it('five backups requested at once with MAX_CONCURRENT_BACKUPS=2 never run more than two at a time across two workers', async () => {
    const backups = await startBackupSystem(
      'backup-limit',
      [{ name: 'limited', databaseUrl: source.url, target: 'local', cron: '0 0 1 1 *', restoreCheck: 'full' }],
      { MAX_CONCURRENT_BACKUPS: '2', BACKUP_CONCURRENCY: '5' },
    );
    // A second worker process's worth of workers, each allowed 5 at once on its own.
    const connection = connectTestRedis(backups.system.config, 'worker', 'second-worker');
    const second = await startWorkers({
      config: backups.system.config,
      database: backups.system.testDb.database,
      redis: connection,
      logger: createLogger({ level: 'silent', serviceName: 'test' }),
      metrics: createMetrics(),
    });
    try {
      const answers = await Promise.all(Array.from({ length: 5 }, () => requestBackup(backups, { definition: 'limited' })));
      expect(answers.map((a) => a.statusCode)).toEqual([202, 202, 202, 202, 202]);

      const rows = await waitForRuns(backups, 'limited', 5, 90_000);
      expect(rows.map((r) => r.status)).toEqual(Array(5).fill('succeeded'));
      // Recorded start and end times: the limit held, and the fleet did use both slots.
      expect(maxOverlap(rows)).toBe(2);
      expect(new Set(rows.map((r) => r.jobId)).size).toBe(5);
      expect((await readdir(backups.directory)).filter((f) => f.endsWith('.dump'))).toHaveLength(5);
    } finally {
      await second.close();
      connection.disconnect();
      await backups.close();
    }
  });

  it('kills a dump that cannot finish in time, leaves no file and records why', async () => {
    const backups = await startBackupSystem(
      'backup-timeout',
      [{ name: 'blocked', databaseUrl: source.url, target: 'local', cron: '0 0 1 1 *' }],
      { BACKUP_TIMEOUT_SECONDS: '1', BACKUP_ATTEMPTS: '1' },
    );
    const holder = new pg.Client({ connectionString: source.url });
    await holder.connect();
    try {
      // pg_dump waits for a lock this transaction holds until the test ends.
      await holder.query('begin');
      await holder.query('lock table orders in access exclusive mode');
      const answer = await requestBackup(backups, { definition: 'blocked' });
      expect(answer.statusCode).toBe(202);
      const { jobId } = JSON.parse(answer.body) as { jobId: string };

      const [row] = await waitForRuns(backups, 'blocked', 1, 30_000);
      expect(row).toMatchObject({
        status: 'failed',
        location: null,
        error: { code: 'BACKUP_TIMEOUT', message: expect.stringContaining('timed out'), details: { reason: 'timeout' } },
      });
      expect(await readdir(backups.directory)).toEqual([]);
      const job = await waitFor(
        async () => {
          const found = await backups.system.queues.backup.getJob(jobId);
          return (await found?.getState()) === 'failed' ? found : undefined;
        },
        { timeoutMs: 10_000, what: 'the job to fail' },
      );
      expect(job.failedReason).toContain('timed out');
      // No pg_dump process is left waiting on the lock (its server backend waits until the lock frees).
      const database = new URL(source.url).pathname.slice(1);
      const { stdout } = await execFileAsync('ps', ['-eo', 'args']);
      expect(stdout.split('\n').filter((line) => line.startsWith('pg_dump') && line.includes(database))).toEqual([]);
    } finally {
      await holder.query('rollback');
      await holder.end();
      await backups.close();
    }
  });

  it('retention keeps exactly the newest keepLast backups and marks the others pruned', async () => {
    const backups = await startBackupSystem('backup-retention', [
      { name: 'kept', databaseUrl: source.url, target: 'local', cron: '0 0 1 1 *', retention: { keepLast: 2 }, restoreCheck: 'none' },
      { name: 'kept-other', databaseUrl: source.url, target: 'local', cron: '0 0 1 1 *', retention: { keepLast: 1 }, restoreCheck: 'none' },
    ]);
    try {
      // Another definition's backup in the same directory is not this policy's to delete.
      expect((await requestBackup(backups, { definition: 'kept-other' })).statusCode).toBe(202);
      await waitForRuns(backups, 'kept-other', 1);
      for (let run = 1; run <= 4; run++) {
        expect((await requestBackup(backups, { definition: 'kept' })).statusCode).toBe(202);
        await waitForRuns(backups, 'kept', run);
      }

      const rows = await waitForStatuses(backups, 'kept', ['pruned', 'pruned', 'succeeded', 'succeeded']);
      const files = (await readdir(backups.directory)).sort();
      const kept = rows.slice(2).map((r) => basename(r.location ?? ''));
      const other = (await rowsOf(backups, 'kept-other')).map((r) => basename(r.location ?? ''));
      expect(files).toEqual([...kept, ...other].sort());
    } finally {
      await backups.close();
    }
  });

  it('backs up to S3-compatible storage: the stored object matches the row, reads back, and retention prunes objects', async () => {
    const s3 = await startFakeS3({ buckets: ['acme-backups'] });
    const backups = await startBackupSystem(
      'backup-s3',
      [{ name: 'offsite', databaseUrl: source.url, target: 'offsite', cron: '0 0 1 1 *', format: 'plain', retention: { keepLast: 2 } }],
      {
        BACKUP_TARGETS: JSON.stringify({
          offsite: { type: 's3', bucket: 'acme-backups', prefix: 'jobfleet/', endpoint: s3.url, region: s3.region, forcePathStyle: true },
        }),
        BACKUP_S3_ACCESS_KEY_ID: s3.accessKeyId,
        BACKUP_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      },
    );
    try {
      for (let run = 1; run <= 3; run++) {
        expect((await requestBackup(backups, { definition: 'offsite' })).statusCode).toBe(202);
        await waitForRuns(backups, 'offsite', run);
      }
      const rows = await waitForStatuses(backups, 'offsite', ['pruned', 'succeeded', 'succeeded']);
      expect(rows[0]?.target).toContain('s3://acme-backups/jobfleet/');

      const objects = s3.objects('acme-backups');
      const kept = rows.slice(1);
      expect([...objects.keys()].sort()).toEqual(kept.map((r) => (r.location ?? '').replace('s3://acme-backups/', '')).sort());
      for (const row of kept) {
        const object = objects.get((row.location ?? '').replace('s3://acme-backups/', ''));
        expect(object && createHash('sha256').update(object.body).digest('hex')).toBe(row.sha256);
        expect(object?.body.length).toBe(row.bytes);
        // The default check read the object back from S3: hash, gunzip, pg_dump's completion line.
        expect(row.restoreCheck).toMatchObject({ mode: 'list', sha256Verified: true });
        expect(gunzipSync(object?.body ?? Buffer.alloc(0)).toString('utf8')).toContain('COPY public.orders');
      }
      expect(s3.openUploads()).toBe(0);
    } finally {
      await backups.close();
      await s3.close();
    }
  });

  it('many workers booting together leave one scheduler per definition and run each slot once; a removed definition loses its scheduler', async () => {
    const directory = await backupDirectory();
    const definitions = [
      { name: 'every-second', databaseUrl: source.url, target: 'local', cron: '* * * * * *', restoreCheck: 'none' },
      { name: 'yearly', databaseUrl: source.url, target: 'local', cron: '0 0 1 1 *', timezone: 'America/Argentina/Buenos_Aires' },
    ];
    const env = (defs: object[]) => ({
      BACKUP_TARGETS: JSON.stringify({ local: { type: 'filesystem', directory } }),
      BACKUP_DEFINITIONS: JSON.stringify(defs),
    });
    const backups = await startBackupSystem('backup-boot', definitions, { ...env(definitions), QUEUES: 'calendar-sync' });
    const bootWorker = async (defs: object[]) => {
      const config = loadConfig({ ...backups.system.childEnv, ...env(defs), QUEUES: 'backup', LOG_LEVEL: 'silent' });
      const connection = connectTestRedis(config, 'worker', 'booting-worker');
      const fleet = await startWorkers({
        config,
        database: backups.system.testDb.database,
        redis: connection,
        logger: createLogger({ level: 'silent', serviceName: 'test' }),
        metrics: createMetrics(),
      });
      const close = async () => {
        await fleet.close();
        connection.disconnect();
      };
      return { fleet, close };
    };
    let workers: { fleet: WorkerFleet; close(): Promise<void> }[] = [];
    try {
      workers = await Promise.all(Array.from({ length: 6 }, () => bootWorker(definitions)));
      const queue = backups.system.queues.backup;
      const schedulers = await queue.getJobSchedulers(0, -1);
      expect(schedulers.map((s) => s.key).sort()).toEqual(['backup.every-second', 'backup.yearly']);
      expect(schedulers.find((s) => s.key === 'backup.yearly')).toMatchObject({ pattern: '0 0 1 1 *', tz: 'America/Argentina/Buenos_Aires' });
      expect(await queue.getGlobalConcurrency()).toBe(2);

      const rows = await waitForRuns(backups, 'every-second', 4, 30_000);
      await Promise.all(workers.map((w) => w.close()));
      workers = [];

      const finished = (await rowsOf(backups, 'every-second')).filter((r) => r.status !== 'running');
      expect(finished.every((r) => r.status === 'succeeded')).toBe(true);
      const slots = finished.map((r) => r.slot?.getTime());
      expect(new Set(slots).size).toBe(finished.length);
      // Each slot ran once: one job, no run skipped as a duplicate, one file.
      const completed = await queue.getJobs(['completed'], 0, -1);
      const outcomes = completed.map((j) => (j.returnvalue as { outcome: string }).outcome);
      expect(outcomes.filter((o) => o === 'skipped')).toEqual([]);
      expect(new Set(completed.map((j) => j.id)).size).toBe(completed.length);
      const files = await readdir(directory);
      expect(files.filter((f) => f.startsWith('every-second.')).length).toBe(finished.length);
      expect(rows.length).toBeGreaterThanOrEqual(4);

      // A worker booting with the definition gone removes its scheduler (and keeps the other).
      workers = [await bootWorker(definitions.slice(1))];
      expect((await queue.getJobSchedulers(0, -1)).map((s) => s.key)).toEqual(['backup.yearly']);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
      await backups.close();
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('an unreachable database fails the run with the reason, and the worker goes on to the next backup', async () => {
    const unreachable = new URL(source.url);
    unreachable.port = '1';
    const backups = await startBackupSystem(
      'backup-unreachable',
      [
        { name: 'unreachable', databaseUrl: unreachable.toString(), target: 'local', cron: '0 0 1 1 *' },
        { name: 'healthy', databaseUrl: source.url, target: 'local', cron: '0 0 1 1 *' },
      ],
      { BACKUP_ATTEMPTS: '2' },
    );
    try {
      expect((await requestBackup(backups, { definition: 'unreachable' })).statusCode).toBe(202);
      const [failed] = await waitFor(
        async () => {
          const rows = await rowsOf(backups, 'unreachable');
          return rows[0]?.status === 'failed' && rows[0].finishedAt ? rows : undefined;
        },
        { timeoutMs: 20_000, what: 'the unreachable backup to fail' },
      );
      expect(failed?.error).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', message: expect.stringMatching(/connection|connect/i) });
      // Retried once (BACKUP_ATTEMPTS=2) on the same row, then failed for good.
      await waitFor(async () => (await backups.system.queues.backup.getJobCounts('failed')).failed === 1, {
        timeoutMs: 20_000,
        what: 'the job to fail for good',
      });
      expect(await rowsOf(backups, 'unreachable')).toHaveLength(1);

      expect((await requestBackup(backups, { definition: 'healthy' })).statusCode).toBe(202);
      const [healthy] = await waitForRuns(backups, 'healthy', 1);
      expect(healthy?.status).toBe('succeeded');
    } finally {
      await backups.close();
    }
  });

  it('a verify schedule re-checks the newest backup as stored and records a file that changed since', async () => {
    const backups = await startBackupSystem('backup-verify', [
      { name: 'checked', databaseUrl: source.url, target: 'local', cron: '0 0 1 1 *', restoreCheck: 'none', verify: { cron: '* * * * * *' } },
    ]);
    try {
      const schedulers = await backups.system.queues.backup.getJobSchedulers(0, -1);
      expect(schedulers.map((s) => s.key).sort()).toEqual(['backup-verify.checked', 'backup.checked']);
      // Nothing to verify yet: those runs fail with the reason, and there is no row to mark.
      await waitFor(async () => (await backups.system.queues.backup.getFailed()).some((j) => j.failedReason.includes('BACKUP_NOTHING_TO_VERIFY')), {
        timeoutMs: 10_000,
        what: 'a verify run with nothing to verify',
      });

      expect((await requestBackup(backups, { definition: 'checked' })).statusCode).toBe(202);
      const [backup] = await waitForRuns(backups, 'checked', 1);
      if (!backup?.location || !backup.finishedAt) throw new Error('no backup');
      expect(backup.restoreCheck).toBeNull();
      const verified = await waitFor(
        async () => {
          const row = await backupRepository.get(backups.system.testDb.database.db, backup.id);
          return row?.restoreCheck ? row : undefined;
        },
        { timeoutMs: 10_000, what: 'the scheduled verification' },
      );
      expect(verified.restoreCheck).toMatchObject({ mode: 'list', passed: true, sha256Verified: true });

      // The file rots on disk: the next verification fails, says why, and the row keeps the verdict.
      await appendFile(backup.location, 'bit rot');
      const failed = await waitFor(
        async () => {
          const row = await backupRepository.get(backups.system.testDb.database.db, backup.id);
          return (row?.restoreCheck as { passed?: boolean } | null)?.passed === false ? row : undefined;
        },
        { timeoutMs: 10_000, what: 'the failed verification' },
      );
      expect(failed.restoreCheck).toMatchObject({ mode: 'list', passed: false, error: { code: 'BACKUP_CHECKSUM_MISMATCH' } });
      expect(failed.status).toBe('succeeded');
    } finally {
      await backups.close();
    }
  });

  it('a worker over BACKUP_MEMORY_LIMIT_MB hands the backup back for later without spending an attempt', async () => {
    // 64 MB: below what any Node worker process holds, so the guard always trips.
    const backups = await startBackupSystem(
      'backup-memory-guard',
      [{ name: 'guarded', databaseUrl: source.url, target: 'local', cron: '0 0 1 1 *' }],
      { BACKUP_MEMORY_LIMIT_MB: '64' },
    );
    try {
      const answer = await requestBackup(backups, { definition: 'guarded' });
      const { jobId } = JSON.parse(answer.body) as { jobId: string };
      const job = await waitFor(
        async () => {
          const found = await backups.system.queues.backup.getJob(jobId);
          return (await found?.getState()) === 'delayed' ? found : undefined;
        },
        { timeoutMs: 10_000, what: 'the backup to be deferred' },
      );
      expect(job.attemptsMade).toBe(0);
      expect(await rowsOf(backups, 'guarded')).toEqual([]);
      expect(await readdir(backups.directory)).toEqual([]);
    } finally {
      await backups.close();
    }
  });

  it('a worker with an invalid backup definition exits once with a message naming it (no crash loop of stack traces)', async () => {
    const worker = startEntryPoint('apps/worker/src/main.ts', {
      NODE_ENV: 'test',
      DATABASE_URL: source.url,
      REDIS_URL: TEST_REDIS_URL,
      BACKUP_TARGETS: JSON.stringify({ local: { type: 'filesystem', directory: '/tmp/never-used' } }),
      BACKUP_DEFINITIONS: JSON.stringify([
        { name: 'nightly', target: 'local', cron: '0 3 * * * * *' },
        { name: 'weekly', target: 'offsite', cron: '0 4 * * 0' },
      ]),
    });
    const { code } = await worker.exited;
    expect(code).toBe(1);
    expect(worker.output()).toContain('BACKUP_DEFINITIONS[0].cron: invalid cron "0 3 * * * * *"');
    expect(worker.output()).toContain('BACKUP_DEFINITIONS[1].target: unknown target "offsite"; known: local');
    expect(worker.output()).not.toContain('    at ');
  });
});
