/**
 * The production build: `npm run build [-- --outdir <dir>]` (default `dist/`, git-ignored).
 *
 * esbuild bundles each entry point of scripts/entry-points.ts to `<outdir>/<name>.js`: ESM for
 * Node 24, with source maps, our workspace packages inlined (they export TypeScript source) and
 * npm packages left external, loaded from node_modules, so `npm ci --omit=dev` beside the bundle
 * is the whole runtime. Code shared by the entry points goes to chunks in the same folder.
 *
 * Node resolves an external import from the bundle's folder, not from the workspace that wrote it.
 * Where the two differ (a workspace's own version nested in its node_modules, another hoisted to
 * the root), that package is inlined instead. The lockfile fixes the layout and `--omit=dev` only
 * leaves dev packages out, so a check made on the build's tree holds for the production one.
 *
 * Files our code reads at run time are named by `new URL('<literal path>', import.meta.url)` (Lua
 * scripts, WSDLs, the SQL migrations). Each such file or folder is copied to
 * `<outdir>/assets/<its path in the repo>` and the URL rewritten to that copy, so one rule covers
 * every asset, present and future, and the tsx path keeps reading the originals.
 */
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build, type Plugin } from 'esbuild';
import { ENTRY_POINTS } from './entry-points.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const ASSETS = 'assets';
const META_URL = /new URL\((['"])([^'"`]+)\1, import\.meta\.url\)/g;

/** npm packages the workspaces' production code may import: external, so they load from node_modules. */
function productionDependencies(): string[] {
  const names = ['apps', 'packages'].flatMap((group) =>
    readdirSync(join(REPO_ROOT, group))
      .map((dir) => join(REPO_ROOT, group, dir, 'package.json'))
      .filter((manifest) => existsSync(manifest))
      .flatMap((manifest) => Object.keys((JSON.parse(readFileSync(manifest, 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {})),
  );
  return [...new Set(names)].filter((name) => !name.startsWith('@jobfleet/')).sort();
}

/**
 * npm imports stay external when node, starting from `outdir`, finds the very file the importer
 * would; otherwise they are inlined. Reports what it inlined in `inlined`.
 */
function externalWhereNodeFindsTheSame(outdir: string, inlined: Set<string>): Plugin {
  const declared = new Set(productionDependencies());
  return {
    name: 'jobfleet-externals',
    setup(esbuild) {
      esbuild.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (isBuiltin(args.path)) return { external: true };
        // A second resolve passes through here again: let esbuild answer it.
        if (args.path.startsWith('@jobfleet/') || args.pluginData === 'plain') return undefined;
        const packageName = args.path.split('/').slice(0, args.path.startsWith('@') ? 2 : 1).join('/');
        const fromOurs = !args.importer.includes('/node_modules/');
        if (fromOurs && !declared.has(packageName)) {
          return { errors: [{ text: `${packageName} is imported by production code but listed in no workspace's dependencies` }] };
        }
        const plain = { kind: args.kind, pluginData: 'plain' };
        const [wanted, found] = await Promise.all([
          esbuild.resolve(args.path, { ...plain, resolveDir: args.resolveDir }),
          esbuild.resolve(args.path, { ...plain, resolveDir: outdir }),
        ]);
        if (wanted.errors.length > 0) return undefined; // esbuild reports it
        if (found.errors.length > 0) return { errors: [{ text: `node would not find ${packageName} from ${outdir}: build into a folder inside the repository` }] };
        if (wanted.path === found.path) return { external: true };
        inlined.add(`${packageName} (${relative(REPO_ROOT, wanted.path)})`);
        return { path: wanted.path };
      });
    },
  };
}

/** Copies what `new URL('<literal>', import.meta.url)` names into the output and points the URL at the copy. */
function assetsBesideTheBundle(outdir: string): Plugin {
  return {
    name: 'jobfleet-assets',
    setup(esbuild) {
      esbuild.onLoad({ filter: /\.ts$/ }, (file) => {
        const source = readFileSync(file.path, 'utf8');
        const uses = source.split('import.meta.url').length - 1;
        if (uses === 0) return undefined;
        let rewritten = 0;
        const contents = source.replace(META_URL, (_match, _quote, url: string) => {
          const target = resolve(dirname(file.path), url);
          if (!existsSync(target)) throw new Error(`${relative(REPO_ROOT, file.path)}: ${url} does not exist`);
          const inRepo = relative(REPO_ROOT, target);
          cpSync(target, join(outdir, ASSETS, inRepo), { recursive: true });
          rewritten += 1;
          // Every output file sits in outdir itself (entries and chunks), so one relative path fits all.
          return `new URL(${JSON.stringify(`./${ASSETS}/${inRepo}${url.endsWith('/') ? '/' : ''}`)}, import.meta.url)`;
        });
        if (rewritten !== uses) {
          throw new Error(`${relative(REPO_ROOT, file.path)}: the build only relocates new URL('<literal path>', import.meta.url); write other uses of import.meta.url that way`);
        }
        return { contents, loader: 'ts' };
      });
    },
  };
}

const { values } = parseArgs({ options: { outdir: { type: 'string', default: 'dist' } } });
const outdir = resolve(values.outdir);
const started = performance.now();
const inlined = new Set<string>();
rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: REPO_ROOT,
  entryPoints: ENTRY_POINTS,
  outdir,
  // Not under a subfolder: assets are found relative to every output file (see above).
  chunkNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  sourcemap: true,
  plugins: [externalWhereNodeFindsTheSame(outdir, inlined), assetsBesideTheBundle(outdir)],
  logLevel: 'warning',
});
// .js is ESM wherever the output is copied, with or without the repo's package.json above it.
writeFileSync(join(outdir, 'package.json'), `${JSON.stringify({ type: 'module' })}\n`);
console.log(`built ${Object.keys(ENTRY_POINTS).join(', ')} into ${relative(process.cwd(), outdir) || '.'} in ${Math.round(performance.now() - started)} ms`);
if (inlined.size > 0) console.log(`inlined (node would find another version from the bundle): ${[...inlined].sort().join(', ')}`);
