import { createReadStream, createWriteStream, type Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';
import { BACKUP_SUFFIXES, type BackupTarget, type BackupUpload, type StoredBackup } from '../target';

const PARTIAL_SUFFIX = '.partial';

/** Backups as files in one local (or mounted) directory; a run writes `<name>.partial` and renames it. */
export function createFilesystemTarget(settings: { directory: string }): BackupTarget {
  const directory = resolve(settings.directory);

  function locate(location: string): string {
    // Only files directly in this target's directory: a stored row must not reach elsewhere.
    if (dirname(location) !== directory) {
      throw new PermanentError('BACKUP_INVALID_LOCATION', `${location} is not in ${directory}`);
    }
    return location;
  }

  return {
    kind: 'filesystem',
    description: `filesystem:${directory}`,

    async begin(fileName: string): Promise<BackupUpload> {
      const final = join(directory, fileName);
      const partial = `${final}${PARTIAL_SUFFIX}`;
      try {
        await mkdir(directory, { recursive: true });
      } catch (cause) {
        throw new DependencyUnavailableError('backup-directory', `cannot create ${directory}: ${(cause as Error).message}`, { cause });
      }
      // flush: fsync before close, so the rename in commit never publishes unwritten data.
      const stream = createWriteStream(partial, { flush: true });
      let committed = false;
      return {
        stream,
        location: final,
        async commit() {
          await rename(partial, final);
          committed = true;
          await fsyncDirectory(directory);
          return final;
        },
        async abort() {
          stream.destroy();
          await rm(partial, { force: true });
          if (committed) await rm(final, { force: true });
        },
      };
    },

    async open(location: string): Promise<Readable> {
      const path = locate(location);
      // Surface a missing file here rather than as a stream error mid-check.
      await stat(path);
      return createReadStream(path);
    },

    async list(namePrefix: string): Promise<StoredBackup[]> {
      const found: StoredBackup[] = [];
      for (const entry of await entriesOf(directory)) {
        if (!entry.isFile() || !entry.name.startsWith(namePrefix)) continue;
        if (!BACKUP_SUFFIXES.some((suffix) => entry.name.endsWith(suffix))) continue;
        const location = join(directory, entry.name);
        try {
          const info = await stat(location);
          found.push({ name: entry.name, location, bytes: info.size, modifiedAt: info.mtime });
        } catch (error) {
          // Deleted concurrently (another retention run): nothing left to list.
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
      return found;
    },

    async remove(location: string): Promise<void> {
      await rm(locate(location), { force: true });
    },

    async removeAbandoned(namePrefix: string, isLive: (fileName: string) => boolean): Promise<string[]> {
      const removed: string[] = [];
      for (const entry of await entriesOf(directory)) {
        if (!entry.isFile() || !entry.name.startsWith(namePrefix) || !entry.name.endsWith(PARTIAL_SUFFIX)) continue;
        const fileName = entry.name.slice(0, -PARTIAL_SUFFIX.length);
        if (isLive(fileName)) continue;
        await rm(join(directory, entry.name), { force: true });
        removed.push(fileName);
      }
      return removed;
    },
  };
}

/** The directory's entries; none before the first backup created it. */
async function entriesOf(directory: string): Promise<Dirent[]> {
  try {
    return await readdir(directory, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
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
