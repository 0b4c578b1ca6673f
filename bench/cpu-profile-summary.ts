/**
 * Where a process spent its CPU: `tsx bench/cpu-profile-summary.ts <file.cpuprofile | dir>...
 * [top=25] [skipMs=0]`. Reads the profiles `node --cpu-prof` wrote (every .cpuprofile of a
 * directory), adds up self time per function (name + file + line) and per module, and prints the
 * top `top` of each with their share of the busy (non-idle) time. A module is an npm package or a
 * workspace; Node core and native frames (a socket's writev, hashing) count to the nearest package
 * up their stack, the one that asked for the work, since "node:net" alone says nothing about who
 * wrote. `skipMs` leaves out the first milliseconds of each profile: a process's boot (module
 * loading, tsx transpiling, migrations) is not what a load test wants to see.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The parts of V8's .cpuprofile (Chrome DevTools' format) read here. */
interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  /** µs since the previous sample (the first: since startTime). */
  timeDeltas: number[];
}

const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
// V8's pseudo-frames; (idle) is the thread waiting on the event loop, not CPU time.
const IDLE = '(idle)';
const PSEUDO_FRAMES = new Set(['(root)', '(program)', '(garbage collector)', IDLE]);

const args = process.argv.slice(2);
const options = Object.fromEntries(args.filter((a) => a.includes('=')).map((a) => a.split('=') as [string, string]));
const TOP = Number(options.top ?? 25);
const SKIP_US = Number(options.skipMs ?? 0) * 1000;
const files = args
  .filter((a) => !a.includes('='))
  .flatMap((path) => (statSync(path).isDirectory() ? readdirSync(path).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(path, f)) : [path]));
if (files.length === 0) throw new Error('usage: tsx bench/cpu-profile-summary.ts <file.cpuprofile | dir>... [top=25] [skipMs=0]');

function sourcePath(url: string): string | undefined {
  return url.startsWith('file://') ? fileURLToPath(url) : undefined;
}

/** A short location: inside a package from its name on, inside the repo from the root, Node core as is. */
function shortLocation(url: string): string {
  const path = sourcePath(url);
  if (path === undefined) return url;
  const inPackage = path.lastIndexOf('/node_modules/');
  return inPackage >= 0 ? path.slice(inPackage + '/node_modules/'.length) : relative(REPO_ROOT, path);
}

/** The npm package or workspace (or repo file) of a frame; undefined for Node core and native code. */
function packageOf(url: string): string | undefined {
  const path = sourcePath(url);
  if (path === undefined) return undefined;
  const location = shortLocation(url);
  if (path.includes('/node_modules/')) {
    const [scope = '', name = ''] = location.split('/');
    return scope.startsWith('@') ? `${scope}/${name}` : scope;
  }
  const workspace = /^(?:apps|packages)\/([^/]+)\//.exec(location)?.[1];
  return workspace === undefined ? location : `@jobfleet/${workspace}`;
}

const byFunction = new Map<string, number>();
const byModule = new Map<string, number>();
let sampledUs = 0;
let idleUs = 0;
const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const parents = new Map(profile.nodes.flatMap((node) => (node.children ?? []).map((child) => [child, node.id] as const)));
  const owners = new Map<number, string>();
  /** The package of the frame or of its nearest caller that has one; V8's pseudo-frames ("(garbage collector)") stand alone. */
  const ownerOf = (id: number): string => {
    const known = owners.get(id);
    if (known !== undefined) return known;
    const frame = frames.get(id);
    const parent = parents.get(id);
    const own = frame === undefined ? undefined : packageOf(frame.url);
    const fallback = frame === undefined ? 'native' : PSEUDO_FRAMES.has(frame.functionName) ? frame.functionName : frame.url.startsWith('node:') ? 'Node core' : 'native';
    const owner = own ?? (parent === undefined || frames.get(parent)?.functionName === '(root)' ? fallback : ownerOf(parent));
    owners.set(id, owner);
    return owner;
  };
  let at = profile.startTime;
  profile.samples.forEach((nodeId, i) => {
    at += profile.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one (as DevTools counts it).
    const us = profile.timeDeltas[i + 1] ?? profile.endTime - at;
    const frame = frames.get(nodeId);
    if (frame === undefined || at - profile.startTime < SKIP_US) return;
    sampledUs += us;
    if (frame.functionName === IDLE) {
      idleUs += us;
      return;
    }
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
    const owner = ownerOf(nodeId);
    const where = frame.url === '' ? (PSEUDO_FRAMES.has(name) ? '' : `  (native, for ${owner})`) : `  ${shortLocation(frame.url)}:${frame.lineNumber + 1}`;
    add(byFunction, `${name}${frame.url.startsWith('node:') ? `${where} (for ${owner})` : where}`, us);
    add(byModule, owner, us);
  });
}

const busyUs = sampledUs - idleUs;
const ms = (us: number) => (us / 1000).toFixed(0).padStart(8);
const share = (us: number) => `${((100 * us) / busyUs).toFixed(1).padStart(5)}%`;
function printTop(title: string, map: Map<string, number>): void {
  console.log(`\n${title}\n self ms   share  where`);
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${ms(us)}  ${share(us)}  ${key}`);
}

console.log(
  `${files.join(', ')}: ${(sampledUs / 1e6).toFixed(1)} s sampled${SKIP_US > 0 ? ` after the first ${(SKIP_US / 1e6).toFixed(1)} s` : ''}, ` +
    `busy ${(busyUs / 1e6).toFixed(1)} s (idle ${(idleUs / 1e6).toFixed(1)} s); shares are of the busy time`,
);
printTop(`top ${TOP} functions by self time`, byFunction);
printTop(`top ${TOP} modules by self time (Node core and native frames counted to the package that called them)`, byModule);
