/**
 * `npm run bench`: every bench in turn, each in a process of its own (as `tsx bench/<name>.ts`
 * would run it), all writing their goals to one results file, then the goals table from that one
 * run (bench/goals.ts). `memory=1` and `flatness=1` add the long Redis memory and flatness modes
 * (45 min and more here), which are otherwise left to `npm run bench:redis-memory` and
 * `npm run bench:flatness`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { goalTable } from './goals';
import { args } from './args';

const BENCHES: { file: string; args: string[]; when: boolean }[] = [
  { file: 'bench/calendar-sync.bench.ts', args: [], when: true },
  { file: 'bench/fair-dispatch.bench.ts', args: [], when: true },
  { file: 'bench/afip-numbering.bench.ts', args: [], when: true },
  { file: 'bench/redis-shards.bench.ts', args: [], when: true },
  { file: 'bench/http-enqueue.bench.ts', args: ['tracing=1', 'tracingDuration=3'], when: true },
  { file: 'bench/calendar-sync.bench.ts', args: ['mode=memory', 'jobs=1000000'], when: args.memory === '1' },
  { file: 'bench/calendar-sync.bench.ts', args: ['mode=flatness'], when: args.flatness === '1' },
];

function run(file: string, benchArgs: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...benchArgs], { stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${file} ${benchArgs.join(' ')} exited with ${String(signal ?? code)}`))));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'jobfleet-bench-'));
const results = join(dir, 'goals.jsonl');
try {
  for (const bench of BENCHES.filter((b) => b.when)) {
    console.log(`\n=== ${bench.file} ${bench.args.join(' ')}`);
    await run(bench.file, [...bench.args, `results=${results}`]);
  }
  console.log('\n=== throughput goals, all measured in this run (baselines in the same run)');
  console.log(goalTable(results));
  if (args.memory !== '1') console.log('(Redis memory after 1M jobs and flatness: npm run bench -- memory=1 flatness=1, or their own scripts)');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
