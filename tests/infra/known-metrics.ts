// What the alert-rule, runbook and dashboard tests check names against: the metrics the code
// registers (read from a real registry, never a hand-kept list) and the rules' recorded series.
import { readFileSync } from 'node:fs';
import { createMetrics } from '@jobfleet/observability';
import { parse } from 'yaml';

export const ALERTS_FILE = new URL('../../infra/prometheus/alerts.yml', import.meta.url);

interface RuleFile {
  groups: { name: string; rules: ({ record: string; expr: string } | { alert: string; expr: string; annotations?: Record<string, string> })[] }[];
}

export function readRules(): RuleFile['groups'][number]['rules'] {
  return (parse(readFileSync(ALERTS_FILE, 'utf8')) as RuleFile).groups.flatMap((group) => group.rules);
}

// Series Prometheus itself makes for every target.
const SCRAPE_SERIES = ['up'];

/**
 * Every series name a jobfleet process exports, as a process builds its registry (no prefix: the
 * configured deployments use none), histograms with their _bucket/_sum/_count, plus the recorded
 * series of alerts.yml.
 */
export async function knownSeries(): Promise<Set<string>> {
  const metrics = createMetrics();
  const names = new Set(SCRAPE_SERIES);
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    // prom-client types `type` as a numeric enum; at run time it is the exposition's type name.
    if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
    else names.add(metric.name);
  }
  for (const rule of readRules()) if ('record' in rule) names.add(rule.record);
  return names;
}

const KEYWORDS = new Set([
  'and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'inf', 'nan',
  // Aggregations, which may stand before `by (...)` rather than `(`.
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio',
]);

/**
 * The series names a PromQL expression selects: identifiers left once strings, label matchers,
 * ranges, label lists (`by (...)`, `on (...)`, ...), numbers and durations are taken out, that are
 * neither a function (followed by `(`) nor a keyword. Grafana's `$variables` are taken out too.
 */
export function seriesNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/#[^\n]*/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ')
    .replace(/\b\d+(\.\d+)?([eE][+-]?\d+)?[a-z]*\b/g, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = stripped.slice(match.index + match[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(match[0])) continue;
    names.add(match[0]);
  }
  return [...names];
}
