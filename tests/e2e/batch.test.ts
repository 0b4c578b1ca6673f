import { syncStatusRepository } from '@jobfleet/db';
import { reservationRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { startTestSystem, type TestSystem } from '../support/system';

const reservation = (id: string) => reservationRequest(id, 1, { calendarId: 'restaurant@example.com' });

describe('a batch end to end (API batch route -> Redis -> worker -> fake Google Calendar -> Postgres)', () => {
  let system: TestSystem;
  beforeAll(async () => {
    system = await startTestSystem({ label: 'e2e-batch' });
  });
  afterAll(async () => {
    await system.close();
  });

  const postBatch = (jobs: unknown[]) =>
    system.api.inject({
      method: 'POST',
      url: '/v1/jobs/calendar-sync/batch',
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ jobs }),
    });

  it('runs every accepted job of a batch to synced, one Calendar event each, and a resent batch changes nothing', async () => {
    const ids = Array.from({ length: 20 }, (_, n) => `batch-res-${n}`);
    const jobs = [...ids.map((id) => ({ request: reservation(id) })), { request: reservation(ids[0] ?? '') }, { request: { reservationId: 'broken' } }];
    const answer = await postBatch(jobs);
    expect(answer.statusCode).toBe(200);
    const statuses = answer.json<{ results: { status: number }[] }>().results.map(({ status }) => status);
    expect(statuses).toEqual([...ids.map(() => 202), 409, 422]);

    const { db } = system.testDb.database;
    await waitFor(
      async () => {
        const rows = await Promise.all(ids.map((id) => syncStatusRepository.get(db, system.tenantId, 'reservation', id)));
        return rows.every((row) => row?.status === 'synced');
      },
      { timeoutMs: 30_000, what: 'every job of the batch synced' },
    );
    expect(system.calendar.insertCount()).toBe(ids.length);
    expect(system.calendar.listEvents('restaurant@example.com')).toHaveLength(ids.length);

    const again = await postBatch(ids.map((id) => ({ request: reservation(id) })));
    expect(again.json<{ results: { status: number; replayed: boolean }[] }>().results.every(({ status, replayed }) => status === 202 && replayed)).toBe(true);
    const counts = await system.queues['calendar-sync'].getJobCounts('completed', 'failed', 'waiting', 'prioritized', 'active', 'delayed');
    expect(counts).toMatchObject({ completed: ids.length, failed: 0, waiting: 0, prioritized: 0 });
    expect(system.calendar.insertCount()).toBe(ids.length);
  }, 60_000);
});
