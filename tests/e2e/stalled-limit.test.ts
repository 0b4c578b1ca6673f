import { syncStatusRepository } from '@jobfleet/db';
import { reservationRequest } from '../support/fixtures';
import { startEntryPoint, waitFor, type RunningProcess } from '../support/processes';
import { startTestSystem, type TestSystem } from '../support/system';

// maxStalledCount 0: the first time a worker dies holding the job, BullMQ fails it rather than
// running it again. It must end failed with a reason, in Redis and in sync_status, never vanish.
describe('a job stalled more often than maxStalledCount', () => {
  let system: TestSystem;
  const children: RunningProcess[] = [];
  beforeAll(async () => {
    system = await startTestSystem({
      label: 'e2e-stalled-limit',
      workers: false,
      env: {
        QUEUES: 'calendar-sync',
        CALENDAR_SYNC_LOCK_DURATION_MS: '2000',
        CALENDAR_SYNC_STALLED_INTERVAL_MS: '1000',
        CALENDAR_SYNC_MAX_STALLED_COUNT: '0',
        CALENDAR_SYNC_CONCURRENCY: '1',
      },
    });
  });
  afterAll(async () => {
    await Promise.all(children.map((c) => c.kill('SIGKILL')));
    await system.close();
  });

  it('ends failed with the stall as its reason, and the reservation status says so', async () => {
    system.calendar.setLatency(10_000);
    const first = startEntryPoint('apps/worker/src/main.ts', system.childEnv);
    children.push(first);
    const answer = await system.api.inject({
      method: 'POST',
      url: '/v1/jobs/calendar-sync',
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify(reservationRequest('res-stalled')),
    });
    const { jobId } = JSON.parse(answer.body) as { jobId: string };
    await waitFor(() => system.calendar.requestCount('POST') >= 1, { timeoutMs: 60_000, what: () => `the first worker to call Calendar\n${first.output()}` });
    await first.kill('SIGKILL');

    const second = startEntryPoint('apps/worker/src/main.ts', system.childEnv);
    children.push(second);
    await waitFor(async () => (await system.queues['calendar-sync'].getJobState(jobId)) === 'failed', {
      timeoutMs: 60_000,
      what: () => `job ${jobId} failed by the stalled check\n${second.output()}`,
    });
    const job = await system.queues['calendar-sync'].getJob(jobId);
    expect(job?.failedReason).toMatch(/stalled/i);
    const row = await waitFor(
      async () => {
        const status = await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', 'res-stalled');
        return status?.status === 'failed' ? status : undefined;
      },
      { timeoutMs: 10_000, what: 'the reservation status to say failed' },
    );
    expect(row.lastError).toMatchObject({ code: 'JOB_STALLED', message: expect.stringMatching(/stalled/i) });
  }, 150_000);
});
