import { beginIdempotentRequest, createApiKey, createTenant, findIdempotencyRecordByJobId, googleConnectionRepository, syncStatusRepository, tenantLimitsRepository } from '@jobfleet/db';
import { AdmissionRefusal, defineJobKind } from '@jobfleet/kinds';
import { jobIdFor } from '@jobfleet/queue';
import { parseKeyring } from '@jobfleet/secrets';
import { sql } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { z } from 'zod';
import { canonicalJson, sha256Hex } from '../canonical-json';
import { reservation, startTestApi, type TestApi } from '../testing/harness';

interface Result {
  index: number;
  status: number;
  idempotencyKey: string | null;
  jobId?: string;
  links?: Record<string, string>;
  replayed?: boolean;
  retryAfter?: number;
  problem?: Record<string, unknown>;
}

/** A kind of this test that records every admission it is asked for, and refuses the group "closed". */
const askedGroups: string[] = [];
const groupedRequest = z.strictObject({ itemId: z.string().regex(/^[\w-]{1,64}$/), group: z.string().regex(/^[\w-]{1,32}$/) });
const grouped = defineJobKind({
  name: 'grouped',
  requestSchema: groupedRequest,
  syncKind: null,
  intake: {
    summary: 'A job admitted by its group (test kind)',
    entityId: (request) => request.itemId,
    version: () => 0,
    defaultIdempotencyKey: (request) => `item:${request.itemId}`,
    defaultKeyDescription: '`item:<itemId>`',
    jobName: () => 'grouped',
    requiredScope: 'jobs:write',
    admissionKey: (request) => request.group,
    admit(_context, request) {
      askedGroups.push(request.group);
      return request.group === 'closed' ? Promise.reject(new AdmissionRefusal(403, '/problems/connection-not-owned', `Group ${request.group} is closed`)) : Promise.resolve();
    },
  },
  attemptTimeoutMs: () => 1000,
  worker: () => Promise.reject(new Error('no worker in this test')),
});

describe('POST /v1/jobs/<kind>/batch', () => {
  let api: TestApi;
  const keys: Record<string, string> = {};
  beforeAll(async () => {
    // Limits are read on every request, so a quota override bites at once.
    api = await startTestApi({ label: 'api-batch', extraKinds: [grouped], env: { TENANT_LIMITS_CACHE_SECONDS: '0' } });
    const { db } = api.testDb.database;
    const keyring = parseKeyring(api.config.secrets.keys, api.config.secrets.activeKeyId);
    for (const tenantId of ['initech', 'daily', 'failing']) {
      await createTenant(db, { id: tenantId, name: tenantId });
      // initech may write to one calendar only.
      const access = tenantId === 'initech' ? { policy: 'allowlist' as const, calendars: ['allowed@example.com'] } : { policy: 'credential' as const };
      await googleConnectionRepository.add(db, keyring, { tenantId, credential: { kind: 'access-token', token: `token-of-${tenantId}` }, access });
      keys[tenantId] = (await createApiKey(db, { tenantId, name: 'batch', scopes: ['jobs:write', 'jobs:read'] })).key;
    }
  });
  afterAll(async () => {
    await api.close();
  });

  const postBatch = (payload: unknown, options: { kind?: string; key?: string; headers?: Record<string, string> } = {}) =>
    api.app.inject({
      method: 'POST',
      url: `/v1/jobs/${options.kind ?? 'calendar-sync'}/batch`,
      headers: { authorization: `Bearer ${options.key ?? api.keys.writer}`, 'content-type': 'application/json', ...options.headers },
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });
  const resultsOf = (answer: LightMyRequestResponse) => {
    expect(answer.statusCode).toBe(200);
    return answer.json<{ results: Result[] }>().results;
  };
  const sync = (tenantId: string, reservationId: string) => syncStatusRepository.get(api.testDb.database.db, tenantId, 'reservation', reservationId);
  const jobsOf = async (tenantId: string) => (await api.queues['calendar-sync'].getJobs(['waiting', 'prioritized'])).filter((job) => (job.data as { tenantId: string }).tenantId === tenantId);

  it('answers each job of a mixed batch on its own, as the single route would, and enqueues exactly the new valid ones', async () => {
    const first = await api.post(reservation('mix-replayed'), { 'idempotency-key': 'mix-replay' });
    await api.post(reservation('mix-mismatch'), { 'idempotency-key': 'mix-mismatch' });
    const busy = reservation('mix-busy');
    // Another request holds this key right now.
    await beginIdempotentRequest(api.testDb.database.db, {
      tenantId: 'acme',
      scope: 'calendar-sync',
      key: 'mix-busy',
      requestHash: sha256Hex(canonicalJson(busy)),
      jobId: jobIdFor('acme', 'mix-busy'),
      ttlSeconds: 60,
      staleAfterSeconds: 60,
    });
    const invalid = reservation('mix-invalid', { version: -1 });
    const before = await api.jobCount();

    const results = resultsOf(
      await postBatch({
        jobs: [
          { idempotencyKey: 'mix-new', request: reservation('mix-new') },
          { idempotencyKey: 'mix-invalid', request: invalid },
          { idempotencyKey: 'mix-new', request: reservation('mix-new') },
          { idempotencyKey: 'mix-replay', request: reservation('mix-replayed') },
          { idempotencyKey: 'mix-mismatch', request: reservation('mix-mismatch', { summary: 'Another table' }) },
          { idempotencyKey: 'mix-busy', request: busy },
          { request: reservation('mix-derived', { version: 4 }) },
          { idempotencyKey: 'has a space', request: reservation('mix-bad-key') },
          { request: reservation('mix-extra'), extra: true },
        ],
      }),
    );
    expect(results.map(({ index, status }) => [index, status])).toEqual([
      [0, 202],
      [1, 422],
      [2, 409],
      [3, 202],
      [4, 422],
      [5, 409],
      [6, 202],
      [7, 422],
      [8, 422],
    ]);
    const [fresh, badBody, duplicate, replayed, mismatch, inFlight, derived, badKey, extra] = results;

    const jobId = jobIdFor('acme', 'mix-new');
    expect(fresh).toEqual({ index: 0, status: 202, idempotencyKey: 'mix-new', jobId, links: { self: `/v1/jobs/${jobId}`, sync: '/v1/reservations/mix-new/sync' }, replayed: false });
    // A refused job carries the very problem the single route answers.
    const single = await api.post(invalid, { 'idempotency-key': 'mix-invalid' });
    expect(badBody).toEqual({ index: 1, status: 422, idempotencyKey: 'mix-invalid', problem: single.json() });
    expect(badBody?.problem).toMatchObject({ type: '/problems/validation', errors: [{ path: 'version' }] });
    expect(duplicate).toEqual({
      index: 2,
      status: 409,
      idempotencyKey: 'mix-new',
      problem: expect.objectContaining({ type: '/problems/idempotency-duplicate-in-batch', status: 409, duplicateOf: 0, detail: expect.stringMatching(/job 0 of this batch/) }),
    });
    expect(replayed).toMatchObject({ status: 202, replayed: true, jobId: first.json().jobId, links: first.json().links });
    expect(mismatch?.problem).toEqual((await api.post(reservation('mix-mismatch', { summary: 'Another table' }), { 'idempotency-key': 'mix-mismatch' })).json());
    expect(inFlight).toMatchObject({ status: 409, retryAfter: 1, problem: { type: '/problems/idempotency-in-flight' } });
    expect(derived).toMatchObject({ status: 202, idempotencyKey: 'reservation:mix-derived:v4', replayed: false });
    expect(badKey).toMatchObject({ idempotencyKey: null, problem: { type: '/problems/validation', detail: 'Job 7 of the batch is invalid', errors: [{ path: 'idempotencyKey' }] } });
    expect(extra).toMatchObject({ idempotencyKey: null, problem: { errors: [{ path: 'extra', message: 'unknown field' }] } });

    expect((await api.jobCount()) - before).toBe(2);
    expect((await api.queues['calendar-sync'].getJob(jobId))?.data).toMatchObject({ tenantId: 'acme', idempotencyKey: 'mix-new', request: reservation('mix-new') });
    expect(await sync('acme', 'mix-new')).toMatchObject({ status: 'pending', version: 1, jobId });
    expect(await sync('acme', 'mix-derived')).toMatchObject({ status: 'pending', version: 4, jobId: derived?.jobId });
    expect(await sync('acme', 'mix-invalid')).toBeUndefined();

    // The single route replays what the batch answered, and the same batch again replays each accepted job.
    const again = await api.post(reservation('mix-new'), { 'idempotency-key': 'mix-new' });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toMatchObject({ jobId, links: fresh?.links });
    const resent = resultsOf(await postBatch({ jobs: [{ idempotencyKey: 'mix-new', request: reservation('mix-new') }, { request: reservation('mix-derived', { version: 4 }) }] }));
    expect(resent).toEqual([
      { ...fresh, replayed: true },
      { ...derived, index: 1, replayed: true },
    ]);
    expect((await api.jobCount()) - before).toBe(2);
  });

  it('accepts 500 jobs in one request, each with its job and sync row', async () => {
    const before = await api.jobCount();
    const jobs = Array.from({ length: 500 }, (_, n) => ({ request: reservation(`bulk-${n}`, { description: 'Table by the window, two high chairs. '.repeat(8) }) }));
    const payload = JSON.stringify({ jobs });
    // Far past the single route's limit of this file (16 KiB), well within the batch's.
    expect(payload.length).toBeGreaterThan(200_000);
    const results = resultsOf(await postBatch(payload));
    expect(results).toHaveLength(500);
    expect(results.every(({ status, index }, n) => status === 202 && index === n)).toBe(true);
    expect(new Set(results.map(({ jobId }) => jobId)).size).toBe(500);
    expect((await api.jobCount()) - before).toBe(500);
    expect(await sync('acme', 'bulk-499')).toMatchObject({ status: 'pending', jobId: results[499]?.jobId });
  });

  it('refuses a batch over API_BATCH_MAX_JOBS, empty or malformed as a whole, and enqueues nothing', async () => {
    const before = await api.jobCount();
    const tooMany = await postBatch({ jobs: Array.from({ length: 501 }, (_, n) => ({ request: reservation(`over-${n}`) })) });
    expect(tooMany.statusCode).toBe(422);
    expect(tooMany.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(tooMany.json()).toMatchObject({ status: 422, type: '/problems/validation', errors: [{ path: 'jobs', message: 'a batch holds at most 500 jobs' }] });
    await expect(findIdempotencyRecordByJobId(api.testDb.database.db, jobIdFor('acme', 'reservation:over-0:v1'))).resolves.toBeUndefined();

    expect((await postBatch({ jobs: [] })).json()).toMatchObject({ status: 422, errors: [{ path: 'jobs', message: 'a batch holds at least 1 job' }] });
    for (const body of [[], { jobs: {} }, { jobs: [{ request: reservation('x') }], extra: 1 }, 'null']) expect((await postBatch(body)).statusCode).toBe(422);
    expect((await postBatch('{"jobs": [')).statusCode).toBe(400);
    const header = await postBatch({ jobs: [{ request: reservation('header') }] }, { headers: { 'idempotency-key': 'k' } });
    expect(header.statusCode).toBe(400);
    expect(header.json()).toMatchObject({ detail: expect.stringMatching(/jobs\[\]\.idempotencyKey/) });
    const huge = await postBatch({ jobs: [{ request: reservation('huge') }], pad: 'x'.repeat(api.config.api.batch.bodyLimitBytes) });
    expect(huge.statusCode).toBe(413);
    expect(huge.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(await api.jobCount()).toBe(before);
  });

  it('counts quotas job by job: a batch crossing jobsPerDay gets 202s up to the limit and 429s after, with nothing of the 429s kept', async () => {
    await tenantLimitsRepository.update(api.testDb.database.db, 'daily', { overrides: { kinds: { 'calendar-sync': { jobsPerDay: 3 } } } });
    const jobs = Array.from({ length: 5 }, (_, n) => ({ request: reservation(`daily-${n}`) }));
    const results = resultsOf(await postBatch({ jobs }, { key: keys.daily }));
    expect(results.map(({ status }) => status)).toEqual([202, 202, 202, 429, 429]);
    expect(results[3]).toMatchObject({
      retryAfter: expect.any(Number),
      problem: { type: '/problems/quota-exceeded', status: 429, quota: 'jobsPerDay', kind: 'calendar-sync', limit: 3, used: 3 },
    });
    // Fair priorities, job by job: the tenant had nothing waiting.
    const queued = await jobsOf('daily');
    expect(queued.map((job) => [job.data.request.reservationId, job.priority]).sort()).toEqual([
      ['daily-0', 1],
      ['daily-1', 2],
      ['daily-2', 3],
    ]);
    expect(await sync('daily', 'daily-3')).toBeUndefined();
    const usage = await api.get('/v1/usage', keys.daily);
    expect(usage.json().kinds['calendar-sync']).toMatchObject({ acceptedToday: 3, waiting: 3 });
    // The refused jobs' keys were freed: judged again (still over quota), not held as in flight.
    expect(resultsOf(await postBatch({ jobs }, { key: keys.daily })).map(({ status, replayed }) => [status, replayed])).toEqual([
      [202, true],
      [202, true],
      [202, true],
      [429, undefined],
      [429, undefined],
    ]);
  });

  it("refuses the jobs the kind's admission refuses (403), asking it once per admission key", async () => {
    const jobs = ['allowed@example.com', 'other@example.com', 'allowed@example.com', 'other@example.com'].map((calendarId, n) => ({ request: reservation(`own-${n}`, { calendarId }) }));
    const results = resultsOf(await postBatch({ jobs }, { key: keys.initech }));
    expect(results.map(({ status }) => status)).toEqual([202, 403, 202, 403]);
    const single = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs/calendar-sync',
      headers: { authorization: `Bearer ${keys.initech ?? ''}`, 'content-type': 'application/json' },
      payload: reservation('own-1', { calendarId: 'other@example.com' }),
    });
    expect(results[1]?.problem).toEqual(single.json());
    expect(await jobsOf('initech')).toHaveLength(2);

    askedGroups.length = 0;
    const groups = ['open', 'closed', 'open', 'open', 'closed', 'other'];
    const answers = resultsOf(await postBatch({ jobs: groups.map((group, n) => ({ request: { itemId: `g-${n}`, group } })) }, { kind: 'grouped' }));
    expect(answers.map(({ status }) => status)).toEqual([202, 403, 202, 202, 403, 202]);
    expect(askedGroups.sort()).toEqual(['closed', 'open', 'other']);
  });

  it('writes the newest version of an entity sent twice in one batch', async () => {
    const results = resultsOf(
      await postBatch({
        jobs: [
          { request: reservation('twice', { version: 2, action: 'update' }) },
          { request: reservation('twice', { version: 1 }) },
        ],
      }),
    );
    expect(results.map(({ status }) => status)).toEqual([202, 202]);
    expect(await sync('acme', 'twice')).toMatchObject({ version: 2, jobId: results[0]?.jobId });
  });

  it('takes back every job, admission and key of a batch whose answers cannot be stored (503)', async () => {
    const { db } = api.testDb.database;
    // Postgres "shutting down" exactly when the answers are stored: after the jobs are in Redis.
    await db.execute(sql`
      create function fail_completion() returns trigger language plpgsql as $$
      begin
        if new.status_code is not null and new.tenant_id = 'failing' then raise exception 'injected outage' using errcode = '57P01'; end if;
        return new;
      end $$`);
    await db.execute(sql`create trigger fail_completion before update on idempotency_keys for each row execute function fail_completion()`);
    try {
      const jobs = Array.from({ length: 3 }, (_, n) => ({ request: reservation(`failing-${n}`) }));
      const answer = await postBatch({ jobs }, { key: keys.failing });
      expect(answer.statusCode).toBe(503);
      expect(answer.headers['retry-after']).toMatch(/^\d+$/);
      expect(answer.json()).toMatchObject({ status: 503, type: '/problems/dependency-unavailable' });
      expect(await jobsOf('failing')).toEqual([]);
      expect((await api.get('/v1/usage', keys.failing)).json().kinds['calendar-sync']).toMatchObject({ acceptedToday: 0, waiting: 0 });
      await expect(findIdempotencyRecordByJobId(db, jobIdFor('failing', 'reservation:failing-0:v1'))).resolves.toBeUndefined();
    } finally {
      await db.execute(sql`drop trigger fail_completion on idempotency_keys`);
      await db.execute(sql`drop function fail_completion`);
    }
    // Nothing was promised, so the same batch is simply accepted now.
    const results = resultsOf(await postBatch({ jobs: [{ request: reservation('failing-0') }] }, { key: keys.failing }));
    expect(results).toMatchObject([{ status: 202, replayed: false }]);
  });
});
