import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import type { BackupDefinition } from '@jobfleet/config';
import { backupRepository } from '@jobfleet/db';
import { createLogger, createMetrics } from '@jobfleet/observability';
import { backupDirectory, seedBackupSource } from '../../../tests/support/backup';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { BackupSupersededError } from './errors';
import { runBackup, type BackupRunDeps, type BackupRunInput } from './run-backup';
import { createFilesystemTarget } from './targets/filesystem';

describe('runBackup', () => {
  let state: TestDatabase;
  let source: TestDatabase;
  let directory: string;
  let definition: BackupDefinition;
  let deps: BackupRunDeps;
  const metrics = createMetrics();

  beforeAll(async () => {
    state = await createTestDatabase();
    source = await createTestDatabase();
    await seedBackupSource(source.url, { customers: 50, orders: 200 });
  });
  afterAll(async () => {
    await state.drop();
    await source.drop();
  });
  beforeEach(async () => {
    directory = await backupDirectory();
    definition = {
      name: 'nightly',
      databaseUrl: source.url,
      format: 'custom',
      target: { name: 'local', type: 'filesystem', directory },
      cron: '0 3 * * *',
      timezone: 'UTC',
      retention: {},
      restoreCheck: 'none',
      verify: undefined,
    };
    deps = {
      database: state.database,
      target: createFilesystemTarget({ directory }),
      timeoutMs: 30_000,
      scratchServerUrl: undefined,
      memoryLimitBytes: 8 * 1024 ** 3,
      signal: new AbortController().signal,
      logger: createLogger({ level: 'silent', serviceName: 'test' }),
      metrics,
    };
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  const onDemand = (jobId: string): BackupRunInput => ({ definition, slot: null, jobId, restoreCheck: 'none' });

  it('an attempt taken over by a second attempt of the same job discards its dump; only the second one is kept', async () => {
    // Both attempts block on the lock, as a dump of a busy database would, until both have started.
    const holder = new pg.Client({ connectionString: source.url });
    await holder.connect();
    await holder.query('begin');
    await holder.query('lock table orders in access exclusive mode');
    try {
      const first = runBackup(onDemand('job-1'), deps);
      const firstToken = await writingAttempt(directory, state);
      // BullMQ hands the same job to another worker after the first lost its lock.
      const second = runBackup(onDemand('job-1'), deps);
      await until(async () => (await writingAttempt(directory, state)) !== firstToken);
      await holder.query('rollback');

      const [lost, kept] = await Promise.allSettled([first, second]);
      expect(lost.status).toBe('rejected');
      expect(lost.status === 'rejected' && lost.reason).toBeInstanceOf(BackupSupersededError);
      expect(kept).toMatchObject({ status: 'fulfilled', value: { outcome: 'succeeded' } });
      const rows = await backupRepository.list(state.database.db, { limit: 10 });
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ status: 'succeeded', jobId: 'job-1', error: null });
      // One complete dump (the row's), no second copy and no partial file.
      expect((await readdir(directory)).map((f) => join(directory, f))).toEqual([rows[0]?.location]);
    } finally {
      await holder.end();
    }
  });

  it('removes the dump an earlier attempt published but died before recording, when the run is taken over', async () => {
    const { db } = state.database;
    // The earlier attempt: recorded where it would publish, published, then its worker was killed.
    const { row: earlier } = await backupRepository.start(db, { schedule: 'nightly', slot: null, target: 'fs', jobId: 'job-3' });
    const orphan = join(directory, `nightly.20261124T020000Z.${earlier.runToken!.slice(0, 8)}.dump`);
    expect(await backupRepository.recordPublishing(db, earlier, orphan)).toBe(true);
    await writeFile(orphan, 'a complete dump nobody recorded');

    const result = await runBackup(onDemand('job-3'), deps);

    expect(result.outcome).toBe('succeeded');
    expect((await readdir(directory)).map((f) => join(directory, f))).toEqual([result.location]);
    expect(await backupRepository.get(db, earlier.id)).toMatchObject({ status: 'succeeded', location: result.location });
  });

  it('removes partial files of attempts that are no longer running and keeps those of running ones', async () => {
    const { db } = state.database;
    // A run in progress elsewhere (another job) and its partial file; and one a killed worker left.
    const { row: running } = await backupRepository.start(db, { schedule: 'nightly', slot: null, target: 'fs', jobId: 'elsewhere' });
    const livePartial = `nightly.20261124T010000Z.${running.runToken!.slice(0, 8)}.dump.partial`;
    const deadPartial = 'nightly.20261124T000000Z.0badc0de.dump.partial';
    const otherDefinition = 'weekly.20261124T000000Z.0badc0de.dump.partial';
    for (const name of [livePartial, deadPartial, otherDefinition]) await writeFile(join(directory, name), 'half a dump');

    const result = await runBackup(onDemand('job-2'), deps);

    expect(result.outcome).toBe('succeeded');
    expect((await readdir(directory)).sort()).toEqual([livePartial, result.location?.slice(directory.length + 1), otherDefinition].sort());
  });
});

/** The token of the running attempt, once its partial file exists. */
async function writingAttempt(directory: string, state: TestDatabase): Promise<string> {
  let token = '';
  await until(async () => {
    token = (await backupRepository.runningTokens(state.database.db, 'nightly'))[0] ?? '';
    const files = await readdir(directory);
    return token !== '' && files.some((f) => f.endsWith('.partial') && f.includes(token.slice(0, 8)));
  });
  return token;
}

async function until(condition: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await delay(50);
  }
}
