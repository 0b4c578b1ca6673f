import { loadConfig } from '@jobfleet/config';
import { CircuitOpenError, DependencyUnavailableError } from '@jobfleet/contracts';
import { jobRepository, openDatabase, syncStatusRepository } from '@jobfleet/db';
import { createMetrics } from '@jobfleet/observability';
import { captureLogs } from '@jobfleet/observability/testing';
import { createDependencyGuard } from '@jobfleet/resilience';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import type { Job } from 'bullmq';
import { reservationRequest } from '../../../tests/support/fixtures';
import { calendarSync } from './calendar-sync/index';
import { attemptHistory } from './job-history';
import { trackSyncStatus } from './sync-tracking';

describe('trackSyncStatus', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['t1'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  const settings = loadConfig({}).resilience.postgres;
  const guard = () => createDependencyGuard('postgres', settings, { metrics: createMetrics(), logger: captureLogs().logger });
  const context = () => ({ signal: new AbortController().signal, attempt: 1, finalAttempt: false, logger: captureLogs().logger, recordCompletion: () => Promise.resolve() });
  const entity = (entityId: string) => ({ tenantId: 't1', kind: 'reservation', entityId, version: 1, jobId: `job-${entityId}` });

  it('resolves with the result of the work once its synced row is durable', async () => {
    const deps = { database: testDb.database, logger: captureLogs().logger, postgres: guard() };
    const result = await trackSyncStatus(deps, entity('fast'), context(), () => Promise.resolve({ result: 'done', externalRef: 'event-1' }));
    expect(result).toBe('done');
    expect(await syncStatusRepository.get(testDb.database.db, 't1', 'reservation', 'fast')).toMatchObject({ status: 'synced', attempts: 1, externalRef: 'event-1' });
  });

  it('writes the synced row and the end of the run in the attempt history in one statement', async () => {
    const statements: string[] = [];
    const counted = openDatabase({ url: testDb.url, dataDir: '.data', onStatement: (query) => statements.push(query) });
    try {
      const postgres = guard();
      const history = attemptHistory({ database: counted, postgres }, calendarSync, 'w1');
      const job = { id: 'job-together', timestamp: Date.now(), data: { tenantId: 't1', idempotencyKey: 'k-together', request: reservationRequest('together') } } as unknown as Job;
      const startedAt = new Date();
      const recordCompletion = () => history.record(job, { run: 1, attempt: 1, startedAt, ended: { at: new Date(), outcome: 'completed', error: undefined } });
      let beforeEnd = 0;
      await trackSyncStatus({ database: counted, logger: captureLogs().logger, postgres }, entity('together'), { ...context(), recordCompletion }, () => {
        beforeEnd = statements.length;
        return Promise.resolve({ result: null, externalRef: 'event-3' });
      });
      expect(statements.length - beforeEnd).toBe(1);
      expect(await syncStatusRepository.get(testDb.database.db, 't1', 'reservation', 'together')).toMatchObject({ status: 'synced' });
      expect(await jobRepository.get(testDb.database.db, 'calendar-sync', 'job-together')).toMatchObject({ state: 'completed', businessKey: 'together' });
    } finally {
      await counted.close();
    }
  });

  it('shows running while the work runs', async () => {
    const deps = { database: testDb.database, logger: captureLogs().logger, postgres: guard() };
    let seen: string | undefined;
    await trackSyncStatus(deps, entity('slow'), context(), async () => {
      // Long enough for the running write's flush.
      await new Promise((resolve) => setTimeout(resolve, 200));
      seen = (await syncStatusRepository.get(testDb.database.db, 't1', 'reservation', 'slow'))?.status;
      return { result: null, externalRef: 'event-2' };
    });
    expect(seen).toBe('running');
  });

  it('starts no work while the Postgres breaker is open: the job waits', async () => {
    const postgres = guard();
    for (let failure = 0; failure < settings.maxFailures; failure++) {
      await postgres.call('down', () => Promise.reject(new DependencyUnavailableError('postgres', 'connection refused'))).catch(() => undefined);
    }
    expect(postgres.state()).toBe('open');
    let worked = false;
    const attempt = trackSyncStatus({ database: testDb.database, logger: captureLogs().logger, postgres }, entity('closed'), context(), () => {
      worked = true;
      return Promise.resolve({ result: null, externalRef: 'never' });
    });
    await expect(attempt).rejects.toBeInstanceOf(CircuitOpenError);
    expect(worked).toBe(false);
    expect(await syncStatusRepository.get(testDb.database.db, 't1', 'reservation', 'closed')).toBeUndefined();
  });
});
