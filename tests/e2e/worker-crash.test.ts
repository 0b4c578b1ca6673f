import { syncStatusRepository } from '@jobfleet/db';
import { reservationRequest } from '../support/fixtures';
import { startEntryPoint, waitFor, type RunningProcess } from '../support/processes';
import { startTestSystem, type TestSystem } from '../support/system';

// A worker killed with SIGKILL mid-job: its lock expires, BullMQ's stalled-job check in another
// worker moves the job back to wait, and that worker finishes it. The Calendar effect stays single.
describe('worker killed with SIGKILL in the middle of a job', () => {
  let system: TestSystem;
  const children: RunningProcess[] = [];
  beforeAll(async () => {
    // In-process API only: the workers are real child processes.
    system = await startTestSystem({
      label: 'e2e-crash',
      workers: false,
      env: { CALENDAR_SYNC_LOCK_DURATION_MS: '2000', CALENDAR_SYNC_STALLED_INTERVAL_MS: '1000', CALENDAR_SYNC_CONCURRENCY: '1' },
    });
  });
  afterAll(async () => {
    await Promise.all(children.map((c) => c.kill('SIGKILL')));
    await system.close();
  });

  it('is finished by another worker after the stall interval, with exactly one Calendar event', async () => {
    // Calendar holds every answer for 4 s: the first worker is certainly mid-request when killed.
    system.calendar.setLatency(4000);
    const first = startEntryPoint('apps/worker/src/main.ts', system.childEnv);
    children.push(first);

    const answer = await system.api.inject({
      method: 'POST',
      url: '/v1/jobs/calendar-sync',
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json', 'idempotency-key': 'crash-1' },
      payload: JSON.stringify(reservationRequest('res-crash', 1, { summary: 'Survives a crash' })),
    });
    expect(answer.statusCode).toBe(202);
    const jobId: string = JSON.parse(answer.body).jobId;

    // The first child boots first (tsx compiles the worker on a cold cache): a loaded machine takes a while.
    await waitFor(() => system.calendar.requestCount('POST') >= 1, { timeoutMs: 60_000, what: 'the first worker to call Calendar' });
    expect(await system.queues['calendar-sync'].getJobState(jobId)).toBe('active');
    await first.kill('SIGKILL');

    system.calendar.setLatency(0);
    const second = startEntryPoint('apps/worker/src/main.ts', system.childEnv);
    children.push(second);

    await waitFor(async () => (await system.queues['calendar-sync'].getJobState(jobId)) === 'completed', {
      timeoutMs: 40_000,
      what: `job ${jobId} completed by the second worker\n${second.output()}`,
    });
    const row = await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', 'res-crash');
    expect(row?.status).toBe('synced');
    expect(system.calendar.insertCount()).toBe(1);
    expect(system.calendar.listEvents('primary')).toHaveLength(1);
    const job = await system.queues['calendar-sync'].getJob(jobId);
    // The crashed run counted as a stall, not a failed attempt.
    expect(job?.stalledCounter ?? 0).toBeGreaterThanOrEqual(1);
  }, 90_000);
});
