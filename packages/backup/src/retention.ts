import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '@jobfleet/contracts';

export interface RetentionPolicy {
  /** Keep at most this many newest backups. Default: no count limit. */
  keepLast?: number;
  /** Delete backups whose mtime is more than this many days before `now`. Default: no age limit. */
  maxAgeDays?: number;
  /** Only files whose name starts with this are considered (one schedule's backups). */
  prefix: string;
}

export interface RetentionResult {
  /** File names, newest first. */
  kept: string[];
  deleted: string[];
}

const DAY_MS = 24 * 60 * 60 * 1000;
const BACKUP_SUFFIXES = ['.dump', '.sql.gz'];

/**
 * Among finished backups (`prefix*.dump` / `prefix*.sql.gz`; `.partial` files are never matched),
 * ordered newest mtime first, deletes every file beyond the first `keepLast` OR older than
 * `maxAgeDays`, except the single newest, which is always kept.
 */
export async function applyRetention(directory: string, policy: RetentionPolicy, now: Date = new Date()): Promise<RetentionResult> {
  // An empty prefix would put every dump in the directory under one schedule's policy.
  if (policy.prefix === '') throw new PermanentError('BACKUP_INVALID_RETENTION', 'retention prefix must not be empty');
  if (policy.keepLast !== undefined && !(Number.isInteger(policy.keepLast) && policy.keepLast >= 1)) {
    throw new PermanentError('BACKUP_INVALID_RETENTION', `keepLast must be an integer >= 1, got ${policy.keepLast}`);
  }
  if (policy.maxAgeDays !== undefined && !(Number.isFinite(policy.maxAgeDays) && policy.maxAgeDays > 0)) {
    throw new PermanentError('BACKUP_INVALID_RETENTION', `maxAgeDays must be > 0, got ${policy.maxAgeDays}`);
  }

  const entries = await readdir(directory, { withFileTypes: true });
  const candidates: { name: string; mtimeMs: number }[] = [];
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.startsWith(policy.prefix)) continue;
    if (!BACKUP_SUFFIXES.some((suffix) => entry.name.endsWith(suffix))) continue;
    try {
      candidates.push({ name: entry.name, mtimeMs: (await stat(join(directory, entry.name))).mtimeMs });
    } catch (error) {
      // Deleted concurrently (another retention run): nothing left to decide.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  // Name breaks mtime ties so repeated runs decide the same way.
  candidates.sort((a, b) => b.mtimeMs - a.mtimeMs || b.name.localeCompare(a.name));

  const cutoffMs = policy.maxAgeDays === undefined ? undefined : now.getTime() - policy.maxAgeDays * DAY_MS;
  const kept: string[] = [];
  const deleted: string[] = [];
  candidates.forEach((file, index) => {
    const beyondCount = policy.keepLast !== undefined && index >= policy.keepLast;
    const tooOld = cutoffMs !== undefined && file.mtimeMs < cutoffMs;
    (index > 0 && (beyondCount || tooOld) ? deleted : kept).push(file.name);
  });
  for (const name of deleted) await rm(join(directory, name), { force: true });
  return { kept, deleted };
}
