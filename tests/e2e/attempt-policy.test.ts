import { syncStatusRepository, type SyncStatusRow } from '@jobfleet/db';
import type { Job } from 'bullmq';
import { sql } from 'drizzle-orm';
import { reservationRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { startTestSystem, type TestSystem } from '../support/system';

const QUEUE = 'calendar-sync';
const HOUR = 3_600_000;

// Each branch of the attempt policy through the real fleet: what BullMQ does with the job and what
// sync_status says about it must be the same decision.
describe('the attempt policy through the worker: BullMQ state and sync_status agree', () => {
  let system: TestSystem;
  beforeAll(async () => {
    system = await startTestSystem({
      label: 'e2e-attempt-policy',
      env: {
        CALENDAR_MAX_FAILURES: '2',
        // One counted Postgres failure would open its breaker: a SQL bug must not count.
        POSTGRES_MAX_FAILURES: '1',
        BREAKER_HALF_OPEN_AFTER_MS: '3000',
        // No retries inside the guard: every 503 reaches the policy.
        DEPENDENCY_RETRIES: '0',
        // A retried job stays in delayed for 30-60 s, long enough to look at; tests promote it.
        JOBS_BACKOFF_DELAY_MS: '60000',
        CALENDAR_SYNC_ATTEMPTS: '3',
      },
    });
  });
  afterAll(async () => {
    await system.close();
  });

  const queue = () => system.queues[QUEUE];
  const status = (reservationId: string) => syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'reservation', reservationId);
  const rowWhere = (reservationId: string, what: string, accept: (row: SyncStatusRow) => boolean) =>
    waitFor(
      async () => {
        const row = await status(reservationId);
        return row !== undefined && accept(row) ? row : undefined;
      },
      { timeoutMs: 20_000, what: `${reservationId} ${what}` },
    );
  const job = async (jobId: string): Promise<Job> => {
    const found = await queue().getJob(jobId);
    if (!found) throw new Error(`job ${jobId} is not in Redis`);
    return found;
  };
  const jobInState = (jobId: string, state: string) =>
    waitFor(async () => ((await queue().getJobState(jobId)) === state ? job(jobId) : undefined), { timeoutMs: 20_000, what: `job ${jobId} ${state}` });
  const post = async (reservationId: string): Promise<string> => {
    const answer = await system.api.inject({
      method: 'POST',
      url: `/v1/jobs/${QUEUE}`,
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify(reservationRequest(reservationId)),
    });
    expect(answer.statusCode).toBe(202);
    return (JSON.parse(answer.body) as { jobId: string }).jobId;
  };
  const metric = async (line: string) =>
    (await system.api.inject({ method: 'GET', url: '/metrics' })).body.split('\n').filter((l) => l.startsWith(line));

  describe('wait: no attempt spent, status waiting', () => {
    it('a 429 with Retry-After puts the job back in delayed for at least that long, attemptsMade 0, row waiting', async () => {
      system.calendar.failNext(1, { status: 429, retryAfterSeconds: 30 });
      const jobId = await post('res-wait-429');

      const row = await rowWhere('res-wait-429', 'waiting', (r) => r.status === 'waiting');
      expect(row).toMatchObject({ attempts: 0, jobId });
      expect(row.lastError).toMatchObject({ code: 'RATE_LIMITED', message: 'waiting: google-calendar rate limited', details: { status: 429 } });
      const delayed = await jobInState(jobId, 'delayed');
      expect(delayed.attemptsMade).toBe(0);
      // Retry-After is the minimum; the deferral only jitters upwards (at most 1.5 ×).
      expect(delayed.delay).toBeGreaterThanOrEqual(30_000);
      expect(delayed.delay).toBeLessThanOrEqual(45_000);

      await delayed.promote();
      const synced = await rowWhere('res-wait-429', 'synced', (r) => r.status === 'synced');
      expect(synced).toMatchObject({ attempts: 1, lastError: null });
      expect((await jobInState(jobId, 'completed')).attemptsMade).toBe(1);
      expect(system.calendar.insertCount()).toBe(1);
    });
  });

  describe('retry: an attempt spent, status pending until the next one', () => {
    it('a 503 once leaves the job delayed for its backoff with attemptsMade 1 and the row pending, then synced', async () => {
      system.calendar.failNext(1, { status: 503 });
      const jobId = await post('res-retry-503');

      const pending = await rowWhere('res-retry-503', 'pending after a failed attempt', (r) => r.status === 'pending' && r.lastError !== null);
      expect(pending).toMatchObject({ attempts: 1, jobId });
      expect(pending.lastError).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', message: expect.stringContaining('HTTP 503') });
      const delayed = await jobInState(jobId, 'delayed');
      expect(delayed.attemptsMade).toBe(1);
      expect(delayed.failedReason).toContain('HTTP 503');
      expect(system.fleet?.guards.calendar.state()).toBe('closed');

      await delayed.promote();
      const synced = await rowWhere('res-retry-503', 'synced', (r) => r.status === 'synced');
      expect(synced).toMatchObject({ attempts: 2, lastError: null });
      // BullMQ counts the successful attempt too.
      expect((await jobInState(jobId, 'completed')).attemptsMade).toBe(2);
    });
  });

  describe('fail: permanent error', () => {
    it('a 403 forbidden fails the job after one attempt although two are left, row failed with the code', async () => {
      system.calendar.failNext(1, { status: 403, reason: 'forbidden' });
      const jobId = await post('res-fail-403');

      const failed = await jobInState(jobId, 'failed');
      expect(failed.attemptsMade).toBe(1);
      expect(failed.opts.attempts).toBe(3);
      expect(failed.failedReason).toMatch(/^CALENDAR_FORBIDDEN: insert answered HTTP 403 forbidden/);
      const row = await rowWhere('res-fail-403', 'failed', (r) => r.status === 'failed');
      expect(row).toMatchObject({ attempts: 1, jobId });
      expect(row.lastError).toMatchObject({ code: 'CALENDAR_FORBIDDEN', details: { status: 403, reason: 'forbidden' } });
      // A refused request says nothing about Calendar's health.
      expect(system.fleet?.guards.calendar.state()).toBe('closed');
    });
  });

  describe('during a Calendar outage', () => {
    const openers: string[] = [];

    it('an open breaker refuses the call: the job is delayed with attemptsMade 0, row waiting on calendar', async () => {
      system.calendar.setOutage({ status: 503 });
      // Failures until the breaker opens; these jobs may spend an attempt each, that is not the point here.
      for (let i = 0; system.fleet?.guards.calendar.state() !== 'open'; i++) {
        expect(i).toBeLessThan(3);
        const id = `res-opener-${i}`;
        openers.push(await post(id));
        await rowWhere(id, 'failed once', (r) => r.lastError !== null);
      }
      const callsBefore = system.calendar.requestCount();
      const jobId = await post('res-wait-breaker');

      const row = await rowWhere('res-wait-breaker', 'waiting', (r) => r.status === 'waiting');
      expect(row).toMatchObject({ attempts: 0, jobId });
      expect(row.lastError).toMatchObject({ code: 'CIRCUIT_OPEN', message: 'waiting: calendar unavailable', details: { dependency: 'calendar' } });
      const delayed = await jobInState(jobId, 'delayed');
      expect(delayed.attemptsMade).toBe(0);
      // The open breaker refused it: Calendar never saw the request.
      expect(system.calendar.requestCount()).toBe(callsBefore);
    });

    it('a job older than the wait budget spends an attempt on each wait and ends failed, not waiting', async () => {
      expect(system.fleet?.guards.calendar.state()).not.toBe('closed');
      // DEPENDENCY_MAX_WAIT_HOURS is at least 1: a job created 25 hours ago has used up the default 24.
      const old = await queue().add(
        QUEUE,
        { tenantId: system.tenantId, idempotencyKey: 'old-job', request: reservationRequest('res-past-budget'), enqueuedAt: new Date(Date.now() - 25 * HOUR).toISOString() },
        { jobId: 'past-budget-1', timestamp: Date.now() - 25 * HOUR, attempts: 3, backoff: { type: 'fixed', delay: 10 } },
      );
      const failed = await jobInState(old.id ?? '', 'failed');
      expect(failed.attemptsMade).toBe(3);
      expect(failed.failedReason).toMatch(/^calendar unavailable: circuit open/);
      const row = await rowWhere('res-past-budget', 'failed', (r) => r.status === 'failed');
      expect(row).toMatchObject({ attempts: 3, jobId: 'past-budget-1' });
      expect(row.lastError).toMatchObject({ code: 'CIRCUIT_OPEN', message: expect.stringMatching(/^calendar unavailable: circuit open/) });
    });

    it('once Calendar is back the waiting and the retried jobs end synced', async () => {
      system.calendar.setOutage(null);
      for (const jobId of openers) {
        if ((await queue().getJobState(jobId)) === 'delayed') await (await job(jobId)).promote();
      }
      for (const id of ['res-wait-breaker', ...openers.map((_, i) => `res-opener-${i}`)]) {
        await rowWhere(id, 'synced after the outage', (r) => r.status === 'synced');
      }
      const waited = await jobInState((await status('res-wait-breaker'))?.jobId ?? '', 'completed');
      expect(waited.attemptsMade).toBe(1);
      expect(system.fleet?.guards.calendar.state()).toBe('closed');
    }, 30_000);
  });

  describe('a deterministic SQL error', () => {
    beforeAll(async () => {
      // Refuses one reservation's `running` write the way a constraint would: SQLSTATE 22023, a bug class.
      await system.testDb.database.db.execute(sql.raw(`
        create function refuse_sql_bug_entity() returns trigger language plpgsql as $$
        begin
          if new.entity_id = 'res-sql-bug' and new.status = 'running' then
            raise exception 'test trigger refuses sync_status of %', new.entity_id using errcode = '22023';
          end if;
          return new;
        end $$;
        create trigger refuse_sql_bug_entity before insert or update on sync_status
          for each row execute function refuse_sql_bug_entity();
      `));
    });

    it('fails the job at once with attempts left, leaves the Postgres breaker closed, and other jobs keep completing', async () => {
      const jobId = await post('res-sql-bug');

      const failed = await jobInState(jobId, 'failed');
      expect(failed.attemptsMade).toBe(1);
      expect(failed.opts.attempts).toBe(3);
      expect(failed.failedReason).toBe('POSTGRES_REFUSED: Postgres refused the statement: test trigger refuses sync_status of res-sql-bug (SQLSTATE 22023)');
      // The failure write is not refused: the row says why the job failed.
      const row = await rowWhere('res-sql-bug', 'failed', (r) => r.status === 'failed');
      expect(row).toMatchObject({ attempts: 1, jobId });
      expect(row.lastError).toMatchObject({
        code: 'POSTGRES_REFUSED',
        message: 'Postgres refused the statement: test trigger refuses sync_status of res-sql-bug (SQLSTATE 22023)',
        details: { sqlstate: '22023' },
      });
      // Not drizzle's message: the SQL text and its parameters stay out of the stored reason.
      expect(JSON.stringify(row.lastError)).not.toContain('Failed query');

      expect(system.fleet?.guards.postgres.state()).toBe('closed');
      expect(await metric('circuit_breaker_state{dependency="postgres"}')).toEqual(['circuit_breaker_state{dependency="postgres"} 0']);
      const others = await Promise.all(['res-after-sql-bug-1', 'res-after-sql-bug-2'].map(post));
      for (const id of ['res-after-sql-bug-1', 'res-after-sql-bug-2']) await rowWhere(id, 'synced', (r) => r.status === 'synced');
      for (const other of others) expect((await jobInState(other, 'completed')).attemptsMade).toBe(1);
      expect(system.fleet?.guards.postgres.state()).toBe('closed');
      expect(await metric('circuit_breaker_transitions_total{dependency="postgres"')).toEqual([]);
    });
  });
});
