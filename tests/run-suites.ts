/**
 * `npm test` after the typecheck: the whole jest suite in two runs. The chaos scenarios each start
 * an API, several workers and a load, and would starve one another (and anything next to them) on
 * a small machine, so they run one at a time after everything else. Arguments pass through to
 * both runs (a path filter applies to both; a run it leaves empty passes). With
 * `--outputFile=<file> --json` the two runs' reports are merged into `<file>`, so a caller sees one
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
const phases = [
  { name: 'main', flags: [`--testPathIgnorePatterns=/node_modules/`, `--testPathIgnorePatterns=${CHAOS}`] },
  // The negative lookahead ignores every test file outside tests/chaos.
  { name: 'chaos', flags: ['--runInBand', `--testPathIgnorePatterns=^(?!.*${CHAOS})`] },
] as const;

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
    ['node_modules/jest/bin/jest.js', ...phase.flags, '--passWithNoTests', ...passThrough, ...(phaseOutput ? [`--outputFile=${phaseOutput}`] : [])],
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
