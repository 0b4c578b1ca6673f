import { syncStatusRepository } from '@jobfleet/db';
import { startTestSystem, type TestSystem } from '../support/system';
import { waitFor } from '../support/processes';
import { reservationRequest } from '../support/fixtures';

const reservation = (id: string, version: number, extra: Record<string, unknown> = {}) =>
  reservationRequest(id, version, { calendarId: 'restaurant@example.com', ...extra });

describe('calendar-sync end to end (API -> Redis -> worker -> fake Google Calendar -> Postgres)', () => {
  let system: TestSystem;
  beforeAll(async () => {
    system = await startTestSystem({ label: 'e2e-calendar' });
  });
  afterAll(async () => {
    await system.close();
  });
  beforeEach(() => system.calendar.reset());

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    system.api.inject({
      method: 'POST',
      url: '/v1/jobs/calendar-sync',
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json', ...headers },
      payload: JSON.stringify(body),
    });

  const syncedRow = (reservationId: string, status = 'synced') =>
    waitFor(
      async () => {
        const row = await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', reservationId);
        return row?.status === status ? row : undefined;
      },
      { timeoutMs: 20_000, what: `reservation ${reservationId} ${status}` },
    );

  it('100 concurrent POSTs with one Idempotency-Key make exactly one job and one Calendar event', async () => {
    const body = reservation('res-concurrent', 1);
    const answers = await Promise.all(Array.from({ length: 100 }, () => post(body, { 'idempotency-key': 'concurrent-key' })));
    const statuses = answers.map((a) => a.statusCode);
    expect(statuses.every((s) => s === 202 || s === 409)).toBe(true);
    const accepted = answers.filter((a) => a.statusCode === 202);
    expect(new Set(accepted.map((a) => a.body)).size).toBe(1);

    const row = await syncedRow('res-concurrent');
    expect(row.externalRef).toMatch(/^[0-9a-v]{5,1024}$/);
    expect(system.calendar.insertCount()).toBe(1);
    expect(system.calendar.listEvents('restaurant@example.com')).toHaveLength(1);
    const counts = await system.queues['calendar-sync'].getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed');
    expect(Object.values(counts).reduce((sum, n) => sum + n, 0)).toBe(1);
  });

  it('Calendar answering 429 twice waits at least its Retry-After each time, spends no attempt, and ends synced with one event', async () => {
    system.calendar.failNext(2, { status: 429, retryAfterSeconds: 1 });
    const sent = Date.now();
    const answer = await post(reservation('res-ratelimited', 1));
    expect(answer.statusCode).toBe(202);
    const row = await syncedRow('res-ratelimited');
    // Two waits of at least the 1 s Google asked for; a rate limit says nothing about the job.
    expect(Date.now() - sent).toBeGreaterThanOrEqual(2000);
    expect(row.attempts).toBe(1);
    expect(row.lastError).toBeNull();
    expect(system.calendar.insertCount()).toBe(1);
    // The row is durable before BullMQ records the completion: read the job once it has.
    const jobId: string = JSON.parse(answer.body).jobId;
    const job = await waitFor(async () => {
      const found = await system.queues['calendar-sync'].getJob(jobId);
      return (await found?.isCompleted()) ? found : undefined;
    }, { timeoutMs: 5000, what: 'job completed in BullMQ' });
    // BullMQ counts the attempt that succeeded; the two waits spent none.
    expect(job.attemptsMade).toBe(1);
  });

  it('create, update and cancel address one event; a stale version changes nothing', async () => {
    await post(reservation('res-lifecycle', 1));
    const created = await syncedRow('res-lifecycle');
    await post(reservation('res-lifecycle', 3, { action: 'update', summary: 'Moved to the terrace' }));
    await waitFor(
      async () => (await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', 'res-lifecycle'))?.version === 3 &&
        system.calendar.listEvents('restaurant@example.com')[0]?.summary === 'Moved to the terrace',
      { timeoutMs: 20_000, what: 'update applied' },
    );
    // Version 2 arrives late: the API accepts it, the worker must not overwrite version 3.
    const late = await post(reservation('res-lifecycle', 2, { action: 'update', summary: 'Old news' }));
    expect(late.statusCode).toBe(202);
    const lateJobId: string = JSON.parse(late.body).jobId;
    await waitFor(async () => (await system.queues['calendar-sync'].getJobState(lateJobId)) === 'completed', {
      timeoutMs: 20_000,
      what: 'late job done',
    });
    expect((await system.queues['calendar-sync'].getJob(lateJobId))?.returnvalue).toMatchObject({ outcome: 'stale' });
    expect(system.calendar.listEvents('restaurant@example.com')[0]?.summary).toBe('Moved to the terrace');

    await post({ reservationId: 'res-lifecycle', action: 'cancel', calendarId: 'restaurant@example.com', version: 4 });
    await waitFor(() => system.calendar.listEvents('restaurant@example.com')[0]?.status === 'cancelled', {
      timeoutMs: 20_000,
      what: 'event cancelled',
    });
    const row = await syncedRow('res-lifecycle');
    expect(row.version).toBe(4);
    expect(row.externalRef).toBe(created.externalRef);
    expect(system.calendar.insertCount()).toBe(1);
  });

  it('an update of an event Calendar does not have fails at once with the error stored', async () => {
    const answer = await post(reservation('res-missing', 1, { action: 'update' }));
    expect(answer.statusCode).toBe(202);
    const row = await syncedRow('res-missing', 'failed');
    expect(row.attempts).toBe(1);
    expect(row.lastError).toMatchObject({ code: 'CALENDAR_EVENT_NOT_FOUND' });
    const job = await system.api.inject({
      method: 'GET',
      url: `/v1/jobs/${(JSON.parse(answer.body) as { jobId: string }).jobId}`,
      headers: { authorization: `Bearer ${system.apiKey}` },
    });
    expect(JSON.parse(job.body)).toMatchObject({ state: 'failed', attempts: 1 });
  });

  it('a malformed job already in Redis fails alone and the worker keeps serving', async () => {
    const bad = await system.queues['calendar-sync'].add('calendar-sync', { tenantId: system.tenantId, request: { action: 'explode' } }, { jobId: 'malformed-1', attempts: 5 });
    await waitFor(async () => ((await bad.isFailed()) ? true : undefined), { timeoutMs: 10_000, what: 'malformed job failed' });
    const failed = await system.queues['calendar-sync'].getJob('malformed-1');
    expect(failed?.attemptsMade).toBe(1);
    expect(failed?.failedReason).toMatch(/INVALID_PAYLOAD|payload/);

    await post(reservation('res-after-bad', 1));
    await syncedRow('res-after-bad');
  });
});
