import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { knownSeries, seriesNamesIn } from './known-metrics';

const DIR = fileURLToPath(new URL('../../infra/grafana/dashboards/', import.meta.url));

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating?: { list: { name: string; query?: string | { query?: string } }[] };
}

const dashboards = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((file) => ({ file, dashboard: JSON.parse(readFileSync(`${DIR}${file}`, 'utf8')) as Dashboard }));

/** Every panel, those inside rows included. */
function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** The PromQL of a dashboard: each panel's targets, and the metric of each `label_values(metric, label)` variable. */
function queriesOf(dashboard: Dashboard): { where: string; names: string[] }[] {
  const panels = allPanels(dashboard.panels).flatMap((p) =>
    (p.targets ?? []).flatMap((t) => (t.expr === undefined ? [] : [{ where: p.title ?? '?', names: seriesNamesIn(t.expr) }])),
  );
  const variables = (dashboard.templating?.list ?? []).flatMap((v) => {
    const query = typeof v.query === 'string' ? v.query : v.query?.query;
    const metric = query?.match(/^label_values\(\s*([a-zA-Z_:][\w:]*)/)?.[1];
    return metric === undefined ? [] : [{ where: `$${v.name}`, names: [metric] }];
  });
  return [...panels, ...variables];
}

describe('Grafana dashboards (infra/grafana/dashboards)', () => {
  it('are the fleet overview and the per-queue drill-down, with distinct uids', () => {
    expect(dashboards.map((d) => d.dashboard.uid).sort()).toEqual(['jobfleet', 'jobfleet-queue']);
  });

  it('query only series the code exports or the alert rules record', async () => {
    const known = await knownSeries();
    const unknown = dashboards.flatMap(({ file, dashboard }) =>
      queriesOf(dashboard).flatMap(({ where, names }) => names.filter((n) => !known.has(n)).map((n) => `${file} ${where}: ${n}`)),
    );
    const named = new Set(dashboards.flatMap(({ dashboard }) => queriesOf(dashboard).flatMap((q) => q.names)));
    for (const name of ['queue_oldest_waiting_job_age_seconds', 'jobs_deferred_total', 'redis_memory_used_bytes', 'postgres_pool_waiting_requests', 'queue:job_failure:ratio_rate1h', 'queue_jobs']) {
      expect(named).toContain(name);
    }
    expect(unknown).toEqual([]);
  });

  it("drill down by a queue variable that every panel's query uses", () => {
    const { dashboard } = dashboards.find((d) => d.dashboard.uid === 'jobfleet-queue')!;
    expect(dashboard.templating?.list.map((v) => v.name)).toContain('queue');
    const exprs = allPanels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
    const thresholds = exprs.filter((e) => e.includes('jobfleet:job_failure_slo:error_budget'));
    expect(exprs.filter((e) => !e.includes('queue="$queue"') && !thresholds.includes(e))).toEqual([]);
  });
});
