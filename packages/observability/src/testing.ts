import type { Logger } from 'pino';
import { createLogger } from './logger';
import type { Metrics } from './metrics';

interface Series {
  value: number;
  labels: Partial<Record<string, string | number>>;
  metricName?: string;
}

export interface CapturedLogs {
  logger: Logger;
  /** Every line written so far, parsed. */
  lines: () => Record<string, unknown>[];
}

/** A real logger (same redaction and serializers) that keeps its lines in memory. */
export function captureLogs(level = 'debug'): CapturedLogs {
  const written: string[] = [];
  const logger = createLogger({ level, serviceName: 'test', destination: { write: (line: string) => void written.push(line) } });
  return { logger, lines: () => written.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

/**
 * The value of the series of `name` whose labels include `labels` (for a histogram pass the
 * series name, e.g. `job_duration_seconds_count`); undefined when there is none.
 */
export async function metricValue(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const family = name.replace(/_(count|sum|bucket)$/, '');
  const data = await metrics.registry.getSingleMetric(family)?.get();
  // Histograms name each series (`_bucket`, `_sum`, `_count`); counters and gauges do not.
  const series: readonly Series[] = data?.values ?? [];
  return series.find(
    (s) => (s.metricName ?? family) === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value),
  )?.value;
}
