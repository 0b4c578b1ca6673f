/**
 * The throughput goals as one table from one run. Each bench, given `results=<file>`, appends a
 * row per goal it measured (JSON lines); bench/run-all.ts (`npm run bench`) hands every bench the
 * same file and prints the table at the end, so the ratios shown were all measured in that run.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

interface GoalRow {
  /** The goal's number in the throughput issue and what it asks, e.g. "1 HTTP enqueue". */
  goal: string;
  /** What was measured, e.g. "req/s vs raw, 50 connections". */
  measure: string;
  value: number;
  /** How the value is shown (digits, unit). */
  shown: string;
  /** The target as text, and whether the value meets it; undefined for a figure that is only reported. */
  target: string;
  met: boolean | undefined;
}

type Target = { atLeast: number } | { atMost: number } | { report: true };

/** Appends a bench's measured goals to `file` (the bench's `results=` argument); does nothing without one. */
export function goalRecorder(file: string | undefined) {
  return {
    record(goal: string, measure: string, value: number, target: Target, unit = '', digits = 2): void {
      if (file === undefined) return;
      const shown = `${value.toFixed(digits)}${unit}`;
      const [text, met] =
        'atLeast' in target ? [`≥ ${target.atLeast}${unit}`, value >= target.atLeast] : 'atMost' in target ? [`≤ ${target.atMost}${unit}`, value <= target.atMost] : ['(reported)', undefined];
      const row: GoalRow = { goal, measure, value, shown, target: text, met };
      appendFileSync(file, `${JSON.stringify(row)}\n`);
    },
  };
}

/** The table of every row recorded in `file`, in the order recorded. */
export function goalTable(file: string): string {
  const rows = existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as GoalRow)
    : [];
  const goalWidth = Math.max(4, ...rows.map((row) => row.goal.length));
  const measureWidth = Math.max(7, ...rows.map((row) => row.measure.length));
  const lines = [`${'goal'.padEnd(goalWidth)}  ${'measure'.padEnd(measureWidth)}  ${'value'.padStart(10)}  ${'target'.padEnd(10)}  met`];
  for (const row of rows) {
    const met = row.met === undefined ? '' : row.met ? 'yes' : 'NO';
    lines.push(`${row.goal.padEnd(goalWidth)}  ${row.measure.padEnd(measureWidth)}  ${row.shown.padStart(10)}  ${row.target.padEnd(10)}  ${met}`);
  }
  return lines.join('\n');
}
