import { syncStatusRepository } from '@jobfleet/db';
import { freePort } from '../support/chaos';
import { reservationRequest } from '../support/fixtures';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver';
import { startEntryPoint, waitFor, type RunningProcess } from '../support/processes';
import { waitUntilHealthy } from '../support/production';
import { startTestSystem, type TestSystem } from '../support/system';

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

// A traceparent of the producer's own: the job's trace must continue it.
const PRODUCER_TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PRODUCER_SPAN_ID = '00f067aa0ba902b7';
const REQUEST_ID = 'producer-request-7';

/** Every span of `trace` that descends from `ancestor` (by parent links, within the trace). */
function descendantsOf(spans: readonly ReceivedSpan[], ancestor: ReceivedSpan): ReceivedSpan[] {
  const byId = new Map(spans.map((span) => [span.spanId, span]));
  return spans.filter((span) => {
    for (let parent = byId.get(span.parentSpanId); parent; parent = byId.get(parent.parentSpanId)) {
      if (parent.spanId === ancestor.spanId) return true;
    }
    return false;
  });
}

// The api and a calendar-sync worker as real processes (tracing bootstraps before they load what
// it instruments), exporting OTLP/HTTP to a receiver in this test; one job, rate-limited once.
describe('tracing: one trace per job, from the POST to the last Calendar call', () => {
  let system: TestSystem;
  let receiver: OtlpReceiver;
  const children: RunningProcess[] = [];
  beforeAll(async () => {
    system = await startTestSystem({ label: 'e2e-tracing', workers: false });
    receiver = await startOtlpReceiver();
  });
  afterAll(async () => {
    await Promise.all(children.map((child) => child.kill('SIGKILL')));
    await receiver.close();
    await system.close();
  });

  const tracedEnv = () => ({ ...system.childEnv, LOG_LEVEL: 'info', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, API_HOST: '127.0.0.1', QUEUES: 'calendar-sync' });

  /** A traced process of `entry` serving on a free port, once healthy. */
  async function startTraced(entry: 'api' | 'worker', env: Record<string, string> = {}): Promise<{ child: RunningProcess; port: number }> {
    const port = await freePort();
    const child = startEntryPoint(`apps/${entry}/src/main.ts`, { ...tracedEnv(), ...env, ...(entry === 'api' ? { API_PORT: String(port) } : { WORKER_METRICS_PORT: String(port) }) });
    children.push(child);
    await waitUntilHealthy(child, port, { what: `the ${entry}`, timeoutMs: 90_000 });
    return { child, port };
  }

  const post = (apiPort: number, reservationId: string, traceId: string) =>
    fetch(`http://127.0.0.1:${apiPort}/v1/jobs/calendar-sync`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${system.apiKey}`,
        'content-type': 'application/json',
        'idempotency-key': reservationId,
        traceparent: `00-${traceId}-${PRODUCER_SPAN_ID}-01`,
        'x-request-id': REQUEST_ID,
      },
      body: JSON.stringify(reservationRequest(reservationId)),
    });

  it('runs one trace id through the request, the enqueue, both runs, the Calendar calls and the sync_status write; logs carry it', async () => {
    const { child: api, port: apiPort } = await startTraced('api');
    const { child: worker } = await startTraced('worker');

    // Google answers the first call with 429: the job waits (no attempt spent) and runs again.
    system.calendar.failNext(1, { status: 429, retryAfterSeconds: 1 });
    const answer = await post(apiPort, 'res-traced', PRODUCER_TRACE_ID);
    expect(answer.status).toBe(202);
    expect(answer.headers.get('x-request-id')).toBe(REQUEST_ID);
    expect(answer.headers.get('traceresponse')).toMatch(new RegExp(`^00-${PRODUCER_TRACE_ID}-[0-9a-f]{16}-01$`));
    const { jobId } = (await answer.json()) as { jobId: string };

    await waitFor(async () => (await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', 'res-traced'))?.status === 'synced', {
      timeoutMs: 30_000,
      what: 'the reservation synced',
    });
    await waitFor(async () => (await system.queues['calendar-sync'].getJobState(jobId)) === 'completed', { timeoutMs: 10_000, what: 'the job completed' });
    // SIGTERM: each process flushes the spans it still holds as it shuts down.
    for (const child of [api, worker]) {
      child.child.kill('SIGTERM');
      expect(await child.exited).toEqual({ code: 0, signal: null });
    }

    // The exporters' own requests to the receiver are not traced (the SDK suppresses them; each export would make more).
    const toReceiver = receiver.spans().filter((span) => [span.attributes['url.full'], span.attributes['http.url']].some((url) => String(url ?? '').startsWith(receiver.endpoint)));
    expect(toReceiver).toEqual([]);
    // Nor are the probes that polled /health/ready until the processes were up.
    const probes = receiver.spans().filter((span) => span.kind === SERVER && /^\/health\//.test(String(span.attributes['url.path'] ?? span.attributes['http.target'] ?? '')));
    expect(probes).toEqual([]);
    const spans = receiver.spans().filter((span) => span.traceId === PRODUCER_TRACE_ID);
    const describe = () => spans.map((s) => `${s.service} ${s.kind} ${s.name} ${s.spanId}<-${s.parentSpanId}`).join('\n');
    const one = (found: ReceivedSpan[], what: string): ReceivedSpan => {
      if (found.length !== 1 || !found[0]) throw new Error(`expected one ${what}, found ${found.length} in:\n${describe()}`);
      return found[0];
    };

    // The request: the server span continues the producer's traceparent; Fastify names the route.
    const request = one(spans.filter((s) => s.kind === SERVER && s.service === 'jobfleet-api'), 'server span');
    expect(request.parentSpanId).toBe(PRODUCER_SPAN_ID);
    expect(request.attributes['http.route']).toBe('/v1/jobs/calendar-sync');

    // The enqueue: BullMQ's producer span (the API adds in bulk, a batch of one here), under the request.
    const enqueue = one(spans.filter((s) => s.kind === PRODUCER), 'producer span');
    expect(descendantsOf(spans, request)).toContainEqual(enqueue);
    expect(enqueue).toMatchObject({ service: 'jobfleet-api', name: 'addBulk calendar-sync', attributes: { 'bullmq.job.bulk.count': 1 } });

    // Both runs of the job: consumer spans in the worker, children of the enqueue, with our attributes.
    const runs = spans.filter((s) => s.kind === CONSUMER && s.service === 'jobfleet-worker');
    expect(runs).toHaveLength(2);
    for (const run of runs) {
      expect(run.parentSpanId).toBe(enqueue.spanId);
      expect(run.attributes).toMatchObject({
        'messaging.system': 'bullmq',
        'messaging.destination.name': 'calendar-sync',
        'messaging.operation.type': 'process',
        'messaging.message.id': jobId,
        'jobfleet.job.kind': 'calendar-sync',
        'jobfleet.tenant.id': system.tenantId,
        'jobfleet.request.id': REQUEST_ID,
        'jobfleet.job.attempt': 1,
      });
    }
    expect(runs.map((run) => run.attributes['jobfleet.job.run']).sort()).toEqual([1, 2]);

    // The Calendar calls hang under the runs: the 429 under one, the insert under the other.
    const calendarCalls = (run: ReceivedSpan) =>
      descendantsOf(spans, run).filter((s) => s.kind === CLIENT && String(s.attributes['url.full'] ?? '').startsWith(system.calendar.rootUrl));
    const statuses = runs.map((run) => calendarCalls(run).map((call) => call.attributes['http.response.status_code']));
    expect(statuses.flat()).toContain(429);
    expect(statuses.every((list) => list.length > 0)).toBe(true);

    // The sync_status writes, pg queries under each run (running, then waiting / synced), and the
    // run's Redis commands (BullMQ completing the job), by name alone.
    for (const run of runs) {
      expect(descendantsOf(spans, run).some((s) => s.kind === CLIENT && /insert into "sync_status"/.test(String(s.attributes['db.query.text'] ?? '')))).toBe(true);
    }
    const redisCommands = runs.flatMap((run) => descendantsOf(spans, run)).filter((s) => s.attributes['db.system.name'] === 'redis');
    expect(redisCommands.length).toBeGreaterThan(0);
    for (const command of redisCommands) expect(String(command.attributes['db.query.text'] ?? '')).toMatch(/^[a-z]+$/i);

    // The api's line of the request and the worker's lines of the job carry the trace id and the request id.
    const logLines = (child: RunningProcess) =>
      child
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    const requestLines = logLines(api).filter((line) => line.reqId === REQUEST_ID);
    expect(requestLines.length).toBeGreaterThanOrEqual(1);
    for (const line of requestLines) expect(line).toMatchObject({ trace_id: PRODUCER_TRACE_ID, span_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
    const jobLines = logLines(worker).filter((line) => line.jobId === jobId);
    expect(jobLines.length).toBeGreaterThanOrEqual(2);
    for (const line of jobLines) expect(line).toMatchObject({ trace_id: PRODUCER_TRACE_ID, span_id: expect.stringMatching(/^[0-9a-f]{16}$/), requestId: REQUEST_ID });
  }, 300_000);

  it('keeps a job finished by another worker after a SIGKILL in the trace that enqueued it', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    // Short locks, so the second worker's stalled check takes the job over soon.
    const stallFast = { CALENDAR_SYNC_LOCK_DURATION_MS: '2000', CALENDAR_SYNC_STALLED_INTERVAL_MS: '1000', CALENDAR_SYNC_CONCURRENCY: '1' };
    const { port: apiPort } = await startTraced('api');
    const { child: first } = await startTraced('worker', stallFast);
    // Calendar holds its answers: the first worker is certainly mid-job when killed.
    system.calendar.setLatency(4000);
    const calls = system.calendar.requestCount('POST');
    const answer = await post(apiPort, 'res-crashed', traceId);
    expect(answer.status).toBe(202);
    const { jobId } = (await answer.json()) as { jobId: string };
    await waitFor(() => system.calendar.requestCount('POST') > calls, { timeoutMs: 30_000, what: 'the first worker calling Calendar' });
    await first.kill('SIGKILL');
    system.calendar.setLatency(0);

    const { child: second } = await startTraced('worker', stallFast);
    await waitFor(async () => (await system.queues['calendar-sync'].getJobState(jobId)) === 'completed', { timeoutMs: 40_000, what: 'the job completed by the second worker' });
    second.child.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });

    // The api exports its batch within seconds; the killed worker's spans died with it.
    const inTrace = () => receiver.spans().filter((span) => span.traceId === traceId);
    const enqueue = await waitFor(() => inTrace().find((span) => span.kind === PRODUCER), { timeoutMs: 15_000, what: 'the producer span of the api' });
    const runs = inTrace().filter((span) => span.kind === CONSUMER && span.attributes['messaging.message.id'] === jobId);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ service: 'jobfleet-worker', parentSpanId: enqueue.spanId, attributes: { 'jobfleet.job.attempt': 1, 'jobfleet.job.run': 2 } });
  }, 300_000);
});
