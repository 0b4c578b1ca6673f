import { createMetrics } from './metrics';
import { registerQueueGauges, type JobCountSource } from './queue-gauges';
import { metricValue as value } from './testing';

function source(name: string, counts: Record<string, number>, paused = false): JobCountSource {
  return { name, getJobCounts: async () => counts, isPaused: async () => paused, getJobs: async () => [] };
}

describe('createMetrics', () => {
  it('gives each instance its own registry with our instruments and process metrics', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.jobsTotal.inc({ queue: 'calendar-sync', outcome: 'completed' });
    const text = await a.registry.metrics();
    for (const name of [
      'jobs_total',
      'job_duration_seconds',
      'job_wait_seconds',
      'jobs_stalled_total',
      'queue_jobs',
      'queue_metrics_collect_errors_total',
      'http_requests_total',
      'http_request_duration_seconds',
      'process_cpu_seconds_total',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(await value(a, 'jobs_total', { outcome: 'completed' })).toBe(1);
    expect(await value(b, 'jobs_total', { outcome: 'completed' })).toBeUndefined();
  });

  it('applies the prefix to every name and the default labels to every series', async () => {
    const metrics = createMetrics({ prefix: 'jf_', defaultLabels: { service: 'api' } });
    metrics.httpRequests.inc({ method: 'GET', route: '/v1/jobs/:id', status_code: '200' });
    const text = await metrics.registry.metrics();
    expect(text).toContain('jf_http_requests_total{method="GET",route="/v1/jobs/:id",status_code="200",service="api"} 1');
    expect(text).toContain('# TYPE jf_process_cpu_seconds_total counter');
    expect(text).not.toMatch(/^http_requests_total/m);
  });
});

describe('registerQueueGauges', () => {
  it("reads job counts at scrape time and shows a paused queue's ready jobs as paused", async () => {
    const metrics = createMetrics();
    const counts = { waiting: 3, prioritized: 1, delayed: 2, active: 1, completed: 5, failed: 0, 'waiting-children': 0 };
    let reads = 0;
    const live: JobCountSource = { ...source('calendar-sync', counts), getJobCounts: async () => (reads++, counts) };
    registerQueueGauges(metrics, [live, source('backup', counts, true)]);
    expect(reads).toBe(0);

    await metrics.registry.metrics();
    expect(reads).toBe(1);
    expect(await value(metrics, 'queue_jobs', { queue: 'calendar-sync', state: 'waiting' })).toBe(3);
    expect(await value(metrics, 'queue_jobs', { queue: 'calendar-sync', state: 'delayed' })).toBe(2);
    expect(await value(metrics, 'queue_jobs', { queue: 'calendar-sync', state: 'paused' })).toBe(0);
    expect(await value(metrics, 'queue_jobs', { queue: 'backup', state: 'waiting' })).toBe(0);
    expect(await value(metrics, 'queue_jobs', { queue: 'backup', state: 'prioritized' })).toBe(0);
    expect(await value(metrics, 'queue_jobs', { queue: 'backup', state: 'paused' })).toBe(4);
  });

  it('skips a queue whose counts fail or hang, counts the error, and still serves the scrape', async () => {
    const metrics = createMetrics();
    const failing: JobCountSource = { ...source('afip-sync', {}), getJobCounts: () => Promise.reject(new Error('READONLY')) };
    const hanging: JobCountSource = { ...source('backup', {}), getJobCounts: () => new Promise(() => undefined) };
    registerQueueGauges(metrics, [source('calendar-sync', { waiting: 2 }), failing, hanging], { timeoutMs: 50 });

    const text = await metrics.registry.metrics();
    expect(text).toContain('queue_jobs{queue="calendar-sync",state="waiting"} 2');
    expect(text).not.toContain('queue="afip-sync",state=');
    expect(text).toContain('queue_metrics_collect_errors_total{queue="afip-sync"} 1');
    expect(text).toContain('queue_metrics_collect_errors_total{queue="backup"} 1');
  });

  it('stops reading the queues once unregistered', async () => {
    const metrics = createMetrics();
    let reads = 0;
    const unregister = registerQueueGauges(metrics, [{ ...source('q', {}), getJobCounts: async () => (reads++, {}) }]);
    await metrics.registry.getSingleMetricAsString('queue_jobs');
    unregister();
    await metrics.registry.getSingleMetricAsString('queue_jobs');
    expect(reads).toBe(1);
  });
});

describe('scrape-time store gauges', () => {
  it('reads the pool of each watch at scrape time and stops once unwatched', async () => {
    const metrics = createMetrics();
    const stats = { totalCount: 4, idleCount: 1, waitingCount: 2, max: 4 };
    const unwatch = metrics.watchPostgresPool(() => stats);
    await metrics.registry.metrics();
    expect(await value(metrics, 'postgres_pool_connections', { state: 'in-use' })).toBe(3);
    expect(await value(metrics, 'postgres_pool_waiting_requests')).toBe(2);
    stats.idleCount = 4;
    stats.waitingCount = 0;
    await metrics.registry.metrics();
    expect(await value(metrics, 'postgres_pool_connections', { state: 'in-use' })).toBe(0);
    unwatch();
    stats.waitingCount = 9;
    await metrics.registry.metrics();
    expect(await value(metrics, 'postgres_pool_waiting_requests')).toBe(0);
  });

  it('reads INFO memory once per instance and scrape, and drops the series of an unwatched instance', async () => {
    const metrics = createMetrics();
    let reads = 0;
    const redis = { info: async () => (reads++, '# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:4194304\r\n') };
    const unwatch = metrics.watchRedisMemory(new Map([['main', redis]]));
    const text = await metrics.registry.metrics();
    expect(reads).toBe(1);
    expect(text).toContain('redis_memory_used_bytes{redis="main"} 1048576');
    expect(text).toContain('redis_memory_max_bytes{redis="main"} 4194304');
    unwatch();
    expect(await metrics.registry.metrics()).not.toContain('redis="main"');
    expect(reads).toBe(1);
  });
});
