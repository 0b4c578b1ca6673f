/**
 * `npm test` after the typecheck: the whole jest suite in two runs, then a few e2e files again on
 * Redis Cluster. The chaos scenarios each start
 * an API, several workers and a load, and would starve one another (and anything next to them) on
 * a small machine, so they run one at a time after everything else. Arguments pass through to
 * every run (a path filter applies to each; a run it leaves empty passes). With
 * `--outputFile=<file> --json` the runs' reports are merged into `<file>`, so a caller sees one
 * report, as from a single jest run.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

interface JestReport {
  success: boolean;
  startTime: number;
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numTotalTestSuites: number;
  numPassedTestSuites: number;
  numFailedTestSuites: number;
  numPendingTestSuites: number;
  numRuntimeErrorTestSuites: number;
  testResults: unknown[];
  [field: string]: unknown;
}

const CHAOS = '/tests/chaos/';
// The whole of tests/e2e takes too long a second time: these cover each kind, batches, quotas,
// fair dispatch and stalled-job recovery on Redis Cluster (README, Scaling Redis).
const ON_CLUSTER = ['calendar-sync', 'afip-sync', 'batch', 'tenant-quotas', 'fairness', 'worker-crash'];
const phases: readonly { name: string; flags: readonly string[]; runner?: string }[] = [
  { name: 'main', flags: [`--testPathIgnorePatterns=/node_modules/`, `--testPathIgnorePatterns=${CHAOS}`] },
  // The negative lookahead ignores every test file outside tests/chaos.
  { name: 'chaos', flags: ['--runInBand', `--testPathIgnorePatterns=^(?!.*${CHAOS})`] },
  // The same e2e files against a private 3-master Redis Cluster, which the runner starts and removes.
  { name: 'cluster', runner: 'tests/support/redis-cluster.ts', flags: ['--runInBand', `--testPathIgnorePatterns=^(?!.*/tests/e2e/(${ON_CLUSTER.join('|')})\\.test\\.ts$)`] },
];

const args = process.argv.slice(2);
const outputArg = args.find((a) => a.startsWith('--outputFile='));
const outputFile = outputArg?.slice('--outputFile='.length);
const passThrough = args.filter((a) => a !== outputArg);

const reports: JestReport[] = [];
let failed = false;
let missingReports = 0;
for (const phase of phases) {
  const phaseOutput = outputFile === undefined ? undefined : `${outputFile}.${phase.name}.json`;
  const run = spawnSync(
    process.execPath,
    [...(phase.runner === undefined ? ['node_modules/jest/bin/jest.js'] : ['--import', 'tsx', phase.runner]), ...phase.flags, '--passWithNoTests', ...passThrough, ...(phaseOutput ? [`--outputFile=${phaseOutput}`] : [])],
    { stdio: 'inherit', env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-vm-modules`.trim() } },
  );
  if (run.status !== 0) failed = true;
  if (phaseOutput !== undefined) {
    try {
      reports.push(JSON.parse(readFileSync(phaseOutput, 'utf8')) as JestReport);
      rmSync(phaseOutput);
    } catch {
      // Jest died before reporting: counted as a failed suite, so the merged report cannot look complete.
      failed = true;
      missingReports += 1;
    }
  }
}

if (outputFile !== undefined && reports.length > 0) writeFileSync(outputFile, JSON.stringify(merge(reports)));
process.exit(failed ? 1 : 0);

function merge(all: JestReport[]): JestReport {
  const sum = (field: keyof JestReport) => all.reduce((total, r) => total + Number(r[field] ?? 0), 0);
  return {
    ...all[0],
    success: !failed && all.every((r) => r.success),
    startTime: Math.min(...all.map((r) => r.startTime)),
    numTotalTests: sum('numTotalTests'),
    numPassedTests: sum('numPassedTests'),
    numFailedTests: sum('numFailedTests'),
    numPendingTests: sum('numPendingTests'),
    numTodoTests: sum('numTodoTests'),
    numTotalTestSuites: sum('numTotalTestSuites'),
    numPassedTestSuites: sum('numPassedTestSuites'),
    numFailedTestSuites: sum('numFailedTestSuites'),
    numPendingTestSuites: sum('numPendingTestSuites'),
    numRuntimeErrorTestSuites: sum('numRuntimeErrorTestSuites') + missingReports,
    testResults: all.flatMap((r) => r.testResults),
  };
}
