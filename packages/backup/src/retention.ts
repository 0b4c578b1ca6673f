import { PermanentError } from '@jobfleet/contracts';
import type { BackupTarget, StoredBackup } from './target';

export interface RetentionPolicy {
  /** Keep at most this many newest backups. Default: no count limit. */
  keepLast?: number;
  /** Delete backups whose modification time is more than this many days before `now`. Default: no age limit. */
  maxAgeDays?: number;
  /** Only backups whose name starts with this are considered (one schedule's backups). */
  prefix: string;
}

export interface RetentionResult {
  /** Newest first. */
  kept: StoredBackup[];
  deleted: StoredBackup[];
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Among the target's finished backups of `policy.prefix`, newest first, deletes every one beyond
 * the first `keepLast` OR older than `maxAgeDays`, except the single newest, which is always kept.
 */
export async function applyRetention(target: BackupTarget, policy: RetentionPolicy, now: Date = new Date()): Promise<RetentionResult> {
  // An empty prefix would put every dump of the target under one schedule's policy.
  if (policy.prefix === '') throw new PermanentError('BACKUP_INVALID_RETENTION', 'retention prefix must not be empty');
  if (policy.keepLast !== undefined && !(Number.isInteger(policy.keepLast) && policy.keepLast >= 1)) {
    throw new PermanentError('BACKUP_INVALID_RETENTION', `keepLast must be an integer >= 1, got ${policy.keepLast}`);
  }
  if (policy.maxAgeDays !== undefined && !(Number.isFinite(policy.maxAgeDays) && policy.maxAgeDays > 0)) {
    throw new PermanentError('BACKUP_INVALID_RETENTION', `maxAgeDays must be > 0, got ${policy.maxAgeDays}`);
  }
  const candidates = await target.list(policy.prefix);
  // Name breaks time ties so repeated runs decide the same way.
  candidates.sort((a, b) => b.modifiedAt.getTime() - a.modifiedAt.getTime() || b.name.localeCompare(a.name));

  const cutoffMs = policy.maxAgeDays === undefined ? undefined : now.getTime() - policy.maxAgeDays * DAY_MS;
  const kept: StoredBackup[] = [];
  const deleted: StoredBackup[] = [];
  candidates.forEach((backup, index) => {
    const beyondCount = policy.keepLast !== undefined && index >= policy.keepLast;
    const tooOld = cutoffMs !== undefined && backup.modifiedAt.getTime() < cutoffMs;
    (index > 0 && (beyondCount || tooOld) ? deleted : kept).push(backup);
  });
  for (const backup of deleted) await target.remove(backup.location);
  return { kept, deleted };
}
