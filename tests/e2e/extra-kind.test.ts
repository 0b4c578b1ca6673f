import { syncStatusRepository } from '@jobfleet/db';
import { defineJobKind, jobDataSchema, parsePayload, trackSyncStatus, type KindIntake } from '@jobfleet/kinds';
import { z } from 'zod';
import { waitFor } from '../support/processes';
import { startTestSystem, type TestSystem } from '../support/system';

/**
 * A kind that exists only in this test: one module, registered beside the registry's kinds, and
 * nothing else in the fleet changes. It "greets" by returning a text, and tracks a sync status.
 */
const greeted: string[] = [];
const greetingRequest = z.strictObject({ greetingId: z.string().regex(/^[\w-]{1,64}$/), name: z.string().min(1).max(100) });
const intake: KindIntake<z.output<typeof greetingRequest>> = {
  summary: 'Greet someone (test kind)',
  entityId: (request) => request.greetingId,
  version: () => 0,
  defaultIdempotencyKey: (request) => `greeting:${request.greetingId}`,
  defaultKeyDescription: '`greeting:<greetingId>`',
  jobName: () => 'greet',
  requiredScope: 'jobs:write',
};
const greeting = defineJobKind({
  name: 'greeting',
  requestSchema: greetingRequest,
  syncKind: 'greeting',
  intake,
  attemptTimeoutMs: () => 10_000,
  worker: () =>
    Promise.resolve({
      start: ({ database, logger, guards }) =>
        Promise.resolve({
          processor: async (job, context) => {
            const data = parsePayload(jobDataSchema(greetingRequest), job.data);
            const entity = { tenantId: data.tenantId, kind: 'greeting', entityId: data.request.greetingId, version: 0, jobId: job.id ?? 'unknown' };
            return trackSyncStatus({ database, logger, postgres: guards.postgres }, entity, context, () => {
              greeted.push(data.request.name);
              return Promise.resolve({ result: { text: `hello ${data.request.name}` }, externalRef: `greeted:${data.request.name}` });
            });
          },
        }),
    }),
});

describe('a job kind added as one module', () => {
  let system: TestSystem;

  beforeAll(async () => {
    system = await startTestSystem({ label: 'extra-kind', extraKinds: [greeting] });
  });
  afterAll(async () => {
    await system.close();
  });

  it('gets an enqueue route, its OpenAPI entry, processing, a sync status and metrics', async () => {
    const answer = await system.api.inject({
      method: 'POST',
      url: '/v1/jobs/greeting',
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json' },
      payload: { greetingId: 'g-1', name: 'Ada' },
    });
    expect(answer.statusCode).toBe(202);
    const accepted = JSON.parse(answer.body) as { jobId: string; queue: string; links: { sync: string } };
    expect(accepted).toMatchObject({ queue: 'greeting', links: { sync: '/v1/sync/greeting/g-1' } });

    await waitFor(async () => (await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'greeting', 'g-1'))?.status === 'synced', {
      timeoutMs: 20_000,
      what: 'greeting synced',
    });
    expect(greeted).toEqual(['Ada']);

    const sync = await system.api.inject({ method: 'GET', url: accepted.links.sync, headers: { authorization: `Bearer ${system.apiKey}` } });
    expect(sync.statusCode).toBe(200);
    expect(JSON.parse(sync.body)).toMatchObject({ status: 'synced', externalRef: 'greeted:Ada', attempts: 1 });

    const job = await system.api.inject({ method: 'GET', url: `/v1/jobs/${accepted.jobId}`, headers: { authorization: `Bearer ${system.apiKey}` } });
    expect(JSON.parse(job.body)).toMatchObject({ queue: 'greeting', state: 'completed', result: { text: 'hello Ada' } });

    const metrics = await system.api.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/jobs_total\{queue="greeting",outcome="completed"\} 1/);

    const docs = await system.api.inject({ method: 'GET', url: '/docs/json' });
    const paths = (JSON.parse(docs.body) as { paths: Record<string, unknown> }).paths;
    expect(Object.keys(paths)).toContain('/v1/jobs/greeting');
  });

  it('validates its body with its own schema: a bad request is a 422 and nothing is enqueued', async () => {
    const answer = await system.api.inject({
      method: 'POST',
      url: '/v1/jobs/greeting',
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json' },
      payload: { greetingId: 'g-2', name: '' },
    });
    expect(answer.statusCode).toBe(422);
    expect(answer.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(await syncStatusRepository.get(system.testDb.database.db, system.tenantId, 'greeting', 'g-2')).toBeUndefined();
  });
});
