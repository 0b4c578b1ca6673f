import { knownSeries, seriesNamesIn } from './known-metrics';

describe('seriesNamesIn', () => {
  it('finds selectors bare, before braces and ranges, and leaves out functions, keywords, labels and literals', () => {
    expect(seriesNamesIn('sum by (queue, le) (rate(job_wait_seconds_bucket{queue=~"$queue", state!="x"}[$__rate_interval]))')).toEqual(['job_wait_seconds_bucket']);
    expect(seriesNamesIn('queue:job_failure:ratio_rate1h > on () group_left () (14.4 * jobfleet:job_failure_slo:error_budget)')).toEqual([
      'queue:job_failure:ratio_rate1h',
      'jobfleet:job_failure_slo:error_budget',
    ]);
    expect(seriesNamesIn('time() - max without (instance) (backup_bytes offset 1h) > 26 * 3600 and up == 1e3')).toEqual(['backup_bytes', 'up']);
    expect(seriesNamesIn('label_replace(vector(1), "queue", "backup", "", "")')).toEqual([]);
    expect(seriesNamesIn('histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))')).toEqual(['http_request_duration_seconds_bucket']);
  });
});

describe('knownSeries', () => {
  it("reads the registry's metrics, histograms with their series, and the recorded rules", async () => {
    const known = await knownSeries();
    for (const name of ['jobs_total', 'queue_oldest_waiting_job_age_seconds', 'job_duration_seconds_bucket', 'job_duration_seconds_count', 'process_cpu_seconds_total', 'queue:job_failure:ratio_rate5m', 'up']) {
      expect(known).toContain(name);
    }
    expect(known).not.toContain('job_duration_seconds');
  });
});
