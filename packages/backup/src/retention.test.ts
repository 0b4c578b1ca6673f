import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyRetention, type RetentionPolicy } from './retention';
import { createFilesystemTarget } from './targets/filesystem';

const NOW = new Date('2025-06-30T12:00:00Z');
const DAY_MS = 24 * 60 * 60 * 1000;

describe('applyRetention', () => {
  let directory: string;
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'jobfleet-retention-'));
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  // File names kept and deleted, as the policy decided them.
  async function retain(policy: RetentionPolicy): Promise<{ kept: string[]; deleted: string[] }> {
    const { kept, deleted } = await applyRetention(createFilesystemTarget({ directory }), policy, NOW);
    return { kept: kept.map((b) => b.name), deleted: deleted.map((b) => b.name) };
  }

  async function file(name: string, ageDays: number): Promise<void> {
    const path = join(directory, name);
    await writeFile(path, name);
    const when = new Date(NOW.getTime() - ageDays * DAY_MS);
    await utimes(path, when, when);
  }

  it('keeps the newest keepLast backups of the prefix and deletes the rest', async () => {
    await file('daily-a.dump', 1);
    await file('daily-b.sql.gz', 2);
    await file('daily-c.dump', 3);
    await file('daily-d.dump', 4);

    const result = await retain({ prefix: 'daily-', keepLast: 2 });

    expect(result).toEqual({ kept: ['daily-a.dump', 'daily-b.sql.gz'], deleted: ['daily-c.dump', 'daily-d.dump'] });
    expect((await readdir(directory)).sort()).toEqual(['daily-a.dump', 'daily-b.sql.gz']);
  });

  it('deletes backups older than maxAgeDays even within keepLast', async () => {
    await file('daily-a.dump', 1);
    await file('daily-b.dump', 5);
    await file('daily-c.dump', 10);

    const result = await retain({ prefix: 'daily-', keepLast: 5, maxAgeDays: 7 });

    expect(result).toEqual({ kept: ['daily-a.dump', 'daily-b.dump'], deleted: ['daily-c.dump'] });
  });

  it('never deletes the single newest backup, however old', async () => {
    await file('daily-a.dump', 30);
    await file('daily-b.dump', 40);

    const result = await retain({ prefix: 'daily-', maxAgeDays: 7 });

    expect(result).toEqual({ kept: ['daily-a.dump'], deleted: ['daily-b.dump'] });
  });

  it('leaves .partial files, other prefixes and other extensions untouched', async () => {
    await file('daily-a.dump', 1);
    await file('daily-old.partial', 100);
    await file('weekly-a.dump', 100);
    await file('daily-notes.txt', 100);

    const result = await retain({ prefix: 'daily-', keepLast: 1, maxAgeDays: 7 });

    expect(result).toEqual({ kept: ['daily-a.dump'], deleted: [] });
    expect((await readdir(directory)).sort()).toEqual(['daily-a.dump', 'daily-notes.txt', 'daily-old.partial', 'weekly-a.dump']);
  });

  it('keeps everything when the policy sets no limit', async () => {
    await file('daily-a.dump', 1);
    await file('daily-b.dump', 400);

    expect(await retain({ prefix: 'daily-' })).toEqual({ kept: ['daily-a.dump', 'daily-b.dump'], deleted: [] });
  });

  it('rejects an empty prefix or a keepLast below 1', async () => {
    await expect(retain({ prefix: '' })).rejects.toMatchObject({ code: 'BACKUP_INVALID_RETENTION' });
    await expect(retain({ prefix: 'daily-', keepLast: 0 })).rejects.toMatchObject({ code: 'BACKUP_INVALID_RETENTION' });
  });
});
