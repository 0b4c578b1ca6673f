import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { ALERTS_FILE, knownSeries, readRules, seriesNamesIn } from './known-metrics';

// promtool comes with Debian's `prometheus` package (.ci/run installs it when missing).
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TESTS_DIR = `${REPO}infra/prometheus/tests`;
const testFiles = readdirSync(TESTS_DIR).filter((f) => f.endsWith('.yml')).map((f) => `${TESTS_DIR}/${f}`);
const alerts = readRules().flatMap((rule) => ('alert' in rule ? [rule] : []));

function promtool(...args: string[]): string {
  return execFileSync('promtool', args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The ```promql blocks of a markdown file: where runbooks write their queries. */
function promqlBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```promql\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

describe('alert rules (infra/prometheus/alerts.yml)', () => {
  it('pass promtool check rules', () => {
    expect(promtool('check', 'rules', fileURLToPath(ALERTS_FILE))).toContain('SUCCESS');
  });

  it('are loaded by the Prometheus config, which passes promtool check config', () => {
    const checked = promtool('check', 'config', `${REPO}infra/prometheus/prometheus.yml`);
    expect(checked).toContain('alerts.yml');
    expect(checked).not.toContain('FAILED');
  });

  it('pass their promtool unit tests', () => {
    expect(testFiles.length).toBeGreaterThan(0);
    expect(promtool('test', 'rules', ...testFiles)).not.toContain('FAILED');
  });

  it('are each unit-tested both firing and not firing', () => {
    interface Eval { alertname: string; exp_alerts?: unknown[] }
    const evals = testFiles.flatMap((file) =>
      (parse(readFileSync(file, 'utf8')) as { tests: { alert_rule_test?: Eval[] }[] }).tests.flatMap((t) => t.alert_rule_test ?? []),
    );
    const untested = alerts
      .map((a) => a.alert)
      .filter((name) => {
        const mine = evals.filter((e) => e.alertname === name);
        return !mine.some((e) => (e.exp_alerts ?? []).length > 0) || !mine.some((e) => (e.exp_alerts ?? []).length === 0);
      });
    expect(untested).toEqual([]);
  });

  it('select only series the code exports or the rules record', async () => {
    const known = await knownSeries();
    const unknown = readRules().flatMap((rule) => seriesNamesIn(rule.expr).filter((name) => !known.has(name)).map((name) => `${'alert' in rule ? rule.alert : rule.record}: ${name}`));
    expect(unknown).toEqual([]);
  });

  it('link each a runbook, docs/runbooks/<alert>.md, which exists', () => {
    const wrong = alerts.filter((a) => a.annotations?.runbook_url !== `docs/runbooks/${a.alert}.md` || !existsSync(`${REPO}docs/runbooks/${a.alert}.md`));
    expect(wrong.map((a) => a.alert)).toEqual([]);
  });
});

describe('runbooks (docs/runbooks)', () => {
  const runbooks = readdirSync(`${REPO}docs/runbooks`).filter((f) => f.endsWith('.md') && f !== 'README.md');

  it('belong each to an alert, and give PromQL to confirm it', () => {
    const names = new Set(alerts.map((a) => `${a.alert}.md`));
    expect(runbooks.filter((f) => !names.has(f))).toEqual([]);
    expect(runbooks.filter((f) => promqlBlocks(readFileSync(`${REPO}docs/runbooks/${f}`, 'utf8')).length === 0)).toEqual([]);
  });

  it('name in their PromQL only series the code exports or the rules record', async () => {
    const known = await knownSeries();
    const unknown = runbooks.flatMap((f) =>
      promqlBlocks(readFileSync(`${REPO}docs/runbooks/${f}`, 'utf8'))
        .flatMap((block) => seriesNamesIn(block))
        .filter((name) => !known.has(name))
        .map((name) => `${f}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });
});
