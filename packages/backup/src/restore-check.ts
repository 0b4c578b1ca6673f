import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';

const execFileAsync = promisify(execFile);
// The TOC of a large schema is a few MB at most; this only guards against runaway output.
const MAX_LIST_BYTES = 64 * 1024 * 1024;

/**
 * The restore check: `pg_restore --list` of a custom-format dump, as its TOC entries (comment
 * lines dropped). Rejects with PermanentError('BACKUP_INVALID_ARCHIVE') if the file is not one.
 */
export async function listDumpContents(file: string, options: { pgRestorePath?: string } = {}): Promise<string[]> {
  try {
    const { stdout } = await execFileAsync(options.pgRestorePath ?? 'pg_restore', ['--list', file], {
      maxBuffer: MAX_LIST_BYTES,
    });
    return stdout.split('\n').filter((line) => line.trim() !== '' && !line.startsWith(';'));
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: string };
    // A string code is a spawn failure (pg_restore missing); a number is its exit status.
    if (typeof failure.code === 'string') {
      throw new DependencyUnavailableError('pg_restore', `could not run pg_restore: ${failure.message}`, { cause: error });
    }
    throw new PermanentError('BACKUP_INVALID_ARCHIVE', `${file} is not a readable custom-format dump: ${(failure.stderr ?? '').trim()}`, {
      cause: error,
      details: { file },
    });
  }
}
