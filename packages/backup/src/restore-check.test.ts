import { createHash } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { withClient } from '../../../tests/support/backup';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { ADMIN_DATABASE_URL } from '../../../tests/support/env';
import { runPgDump, type BackupFormat } from './pg-dump';
import { checkRestore } from './restore-check';
import { createFilesystemTarget } from './targets/filesystem';
import type { BackupTarget } from './target';

const ROWS = 750;

async function scratchDatabases(): Promise<string[]> {
  return withClient(ADMIN_DATABASE_URL, async (c) => {
    const { rows } = await c.query<{ datname: string }>(`select datname from pg_database where datname like 'jobfleet_restore_check_%'`);
    return rows.map((r) => r.datname);
  });
}

describe('checkRestore', () => {
  let source: TestDatabase;
  let directory: string;
  let target: BackupTarget;
  beforeAll(async () => {
    source = await createTestDatabase();
    await withClient(source.url, async (c) => {
      await c.query('create table restore_seed (id int primary key, label text not null)');
      await c.query(`insert into restore_seed select g, 'row ' || g from generate_series(1, ${ROWS}) g`);
    });
  });
  afterAll(async () => {
    await source.drop();
  });
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'jobfleet-restore-check-'));
    target = createFilesystemTarget({ directory });
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  const dump = (format: BackupFormat, name: string) => runPgDump({ databaseUrl: source.url, format, target, name, timeoutMs: 30_000 });

  it.each<BackupFormat>(['custom', 'plain'])('lists a %s dump and verifies its sha256', async (format) => {
    const backup = await dump(format, `list-${format}`);

    const result = await checkRestore({ target, location: backup.location, format, expectedSha256: backup.sha256, mode: 'list', timeoutMs: 30_000 });

    expect(result).toMatchObject({ mode: 'list', sha256Verified: true });
    // custom: every TOC entry (tables, indexes, data); plain: one COPY block per table with data.
    expect(result.entries).toBeGreaterThanOrEqual(format === 'custom' ? 10 : 1);
  });

  it.each<BackupFormat>(['custom', 'plain'])('restores a %s dump into a scratch database, counts its rows and drops it', async (format) => {
    const backup = await dump(format, `full-${format}`);

    const result = await checkRestore({
      target,
      location: backup.location,
      format,
      expectedSha256: backup.sha256,
      mode: 'full',
      scratchServerUrl: ADMIN_DATABASE_URL,
      timeoutMs: 60_000,
    });

    expect(result.tables?.['public.restore_seed']).toBe(ROWS);
    expect(result.totalRows).toBeGreaterThanOrEqual(ROWS);
    expect(result.scratchDatabase).toMatch(/^jobfleet_restore_check_[0-9a-f]{12}$/);
    // Others may belong to parallel tests; this check's own is gone.
    expect(await scratchDatabases()).not.toContain(result.scratchDatabase);
  });

  it('fails a backup whose bytes changed after the run recorded them', async () => {
    const backup = await dump('custom', 'tampered');
    await appendFile(backup.location, 'x');

    await expect(
      checkRestore({ target, location: backup.location, format: 'custom', expectedSha256: backup.sha256, mode: 'list', timeoutMs: 30_000 }),
    ).rejects.toMatchObject({ code: 'BACKUP_CHECKSUM_MISMATCH', retryable: false });
  });

  it('fails a truncated plain dump even when it is valid gzip', async () => {
    const backup = await dump('plain', 'truncated');
    const sql = gunzipSync(await readFile(backup.location));
    const truncated = gzipSync(sql.subarray(0, Math.floor(sql.length / 2)));
    await writeFile(backup.location, truncated);
    const sha256 = createHash('sha256').update(truncated).digest('hex');

    await expect(
      checkRestore({ target, location: backup.location, format: 'plain', expectedSha256: sha256, mode: 'list', timeoutMs: 30_000 }),
    ).rejects.toMatchObject({ code: 'BACKUP_RESTORE_CHECK_FAILED', message: expect.stringContaining('truncated') });
  });

  it('fails a file that is not a custom-format archive', async () => {
    const location = join(directory, 'garbage.dump');
    await writeFile(location, 'not a dump');

    await expect(
      checkRestore({
        target,
        location,
        format: 'custom',
        expectedSha256: createHash('sha256').update('not a dump').digest('hex'),
        mode: 'list',
        timeoutMs: 30_000,
      }),
    ).rejects.toMatchObject({ code: 'BACKUP_RESTORE_CHECK_FAILED', message: expect.stringContaining('pg_restore') });
  });
});
