/**
 * The processes jobfleet runs, by name: the TypeScript source tsx runs in development, bundled by
 * `npm run build` (scripts/build.ts) to `dist/<name>.js` for production (scripts/start.ts picks).
 */
export const ENTRY_POINTS = {
  standalone: 'apps/standalone/src/main.ts',
  api: 'apps/api/src/main.ts',
  worker: 'apps/worker/src/main.ts',
  cli: 'apps/standalone/src/cli.ts',
  migrate: 'packages/db/src/cli/migrate.ts',
  'verify-audit': 'packages/locks/src/cli/verify-audit.ts',
} as const;

export type EntryPointName = keyof typeof ENTRY_POINTS;

export function isEntryPointName(name: string | undefined): name is EntryPointName {
  return name !== undefined && Object.hasOwn(ENTRY_POINTS, name);
}
