import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { MIGRATIONS_DIR } from './client';

// The schema is the single source of the tables: committed migrations must be exactly what
// drizzle-kit generates from it (a schema edit without `npm run db:generate` fails here).
describe('committed migrations', () => {
  it('match the drizzle schema (drizzle-kit generate has nothing to add)', () => {
    const out = mkdtempSync(join(tmpdir(), 'jobfleet-migrations-'));
    try {
      cpSync(MIGRATIONS_DIR, out, { recursive: true });
      const before = readdirSync(out).sort();
      const root = resolve(MIGRATIONS_DIR, '..');
      // drizzle-kit prefixes --out with './', so it must be relative to the working directory.
      const output = execFileSync(
        resolve(root, 'node_modules/.bin/drizzle-kit'),
        ['generate', '--dialect', 'postgresql', '--schema', 'packages/db/src/schema.ts', '--out', relative(root, out)],
        { cwd: root, encoding: 'utf8', stdio: 'pipe' },
      );
      expect(readdirSync(out).sort()).toEqual(before);
      expect(output).toMatch(/No schema changes/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
