/**
 * Runs one jobfleet process: `node scripts/start.ts <name> [args…]`, what `npm start`,
 * `start:api`, `start:worker`, `jobfleet`, `db:migrate` and `locks:verify-audit` call. With
 * NODE_ENV=production it runs the bundle `npm run build` wrote (`dist/<name>.js`, source maps on);
 * otherwise the TypeScript source through tsx, so development needs no build step. Either runs in
 * this process, so there is no parent to forward signals or to outlive a SIGKILL.
 *
 * Node runs this file itself (type stripping): it must work before anything is built and without
 * tsx, which production installs leave out. It imports nothing of ours but the entry list.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ENTRY_POINTS, isEntryPointName } from './entry-points.ts';

const [name, ...args] = process.argv.slice(2);
if (!isEntryPointName(name)) {
  console.error(`usage: node scripts/start.ts <${Object.keys(ENTRY_POINTS).join('|')}> [arguments]`);
  process.exit(2);
}

// packages/config parses the environment for the processes; this only picks which code to load.
const production = process.env.NODE_ENV === 'production';
const entry = production ? new URL(`../dist/${name}.js`, import.meta.url) : new URL(`../${ENTRY_POINTS[name]}`, import.meta.url);
// The entry point reads its arguments from process.argv.slice(2), as when node starts it directly.
process.argv.splice(1, process.argv.length, fileURLToPath(entry), ...args);

if (production) {
  if (!existsSync(entry)) {
    console.error(
      `NODE_ENV=production runs the compiled build, and ${fileURLToPath(entry)} does not exist: run \`npm run build\` first ` +
        '(or leave NODE_ENV unset to run the TypeScript sources through tsx).',
    );
    process.exit(1);
  }
  process.setSourceMapsEnabled(true);
} else {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(entry.href);
