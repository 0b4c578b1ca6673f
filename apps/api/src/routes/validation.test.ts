import { createApiKey, revokeApiKey, syncStatusRepository } from '@jobfleet/db';
import type { LightMyRequestResponse } from 'fastify';
import { reservation, startTestApi, type TestApi } from '../testing/harness';

describe('bad input gets a problem and changes nothing', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-validation' });
  });
  afterAll(async () => {
    await api.close();
  });

  async function expectRefused(
    reservationId: string,
    send: () => Promise<LightMyRequestResponse>,
    status: number,
  ): Promise<Record<string, unknown>> {
    const before = await api.jobCount();
    const answer = await send();
    expect(answer.statusCode).toBe(status);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    const problem = answer.json();
    expect(problem).toMatchObject({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String) });
    expect(await api.jobCount()).toBe(before);
    await expect(syncStatusRepository.get(api.testDb.database.db, 'acme', 'reservation', reservationId)).resolves.toBeUndefined();
    return problem;
  }

  const fieldErrors = (problem: Record<string, unknown>) => (problem.errors as { path: string }[]).map((e) => e.path);

  it('malformed JSON -> 400', async () => {
    await expectRefused('res-malformed', () => api.post('{"reservationId": "res-malformed", '), 400);
  });

  it('wrong types -> 422 naming each field', async () => {
    const problem = await expectRefused(
      'res-types',
      () => api.post(reservation('res-types', { version: '1', attendees: [{ email: 'not-an-email' }] })),
      422,
    );
    expect(fieldErrors(problem)).toEqual(expect.arrayContaining(['version', 'attendees.0.email']));
  });

  it('unknown fields -> 422 naming them', async () => {
    const problem = await expectRefused(
      'res-unknown',
      () => api.post(reservation('res-unknown', { colour: 'red', start: { dateTime: '2026-12-01T20:00:00Z', timeZone: 'UTC', x: 1 } })),
      422,
    );
    expect(fieldErrors(problem)).toEqual(expect.arrayContaining(['colour', 'start.x']));
  });

  it('missing required fields for create -> 422', async () => {
    const problem = await expectRefused(
      'res-missing',
      () => api.post({ reservationId: 'res-missing', action: 'create', calendarId: 'c@example.com', version: 1 }),
      422,
    );
    expect(fieldErrors(problem)).toEqual(expect.arrayContaining(['summary', 'start', 'end']));
  });

  it('end before start -> 422', async () => {
    const problem = await expectRefused(
      'res-backwards',
      () => api.post(reservation('res-backwards', { end: { dateTime: '2026-12-01T19:00:00-03:00', timeZone: 'UTC' } })),
      422,
    );
    expect(fieldErrors(problem)).toEqual(['end.dateTime']);
  });

  it('invalid date string -> 422', async () => {
    const problem = await expectRefused(
      'res-date',
      () => api.post(reservation('res-date', { start: { dateTime: '2026-13-45 25:00', timeZone: 'UTC' } })),
      422,
    );
    expect(fieldErrors(problem)).toContain('start.dateTime');
  });

  it('unknown time zone -> 422', async () => {
    const problem = await expectRefused(
      'res-zone',
      () => api.post(reservation('res-zone', { start: { dateTime: '2026-12-01T20:00:00Z', timeZone: 'Mars/Olympus_Mons' } })),
      422,
    );
    expect(fieldErrors(problem)).toEqual(['start.timeZone']);
  });

  it('body over the limit -> 413', async () => {
    const huge = reservation('res-huge', { description: 'x'.repeat(api.config.api.bodyLimitBytes) });
    await expectRefused('res-huge', () => api.post(huge), 413);
  });

  it('wrong content type -> 415', async () => {
    await expectRefused(
      'res-text',
      () => api.post(JSON.stringify(reservation('res-text')), { 'content-type': 'text/plain' }),
      415,
    );
  });

  it('missing credentials -> 401 with a challenge', async () => {
    const answer = await expectRefused(
      'res-anonymous',
      () =>
        api.app.inject({
          method: 'POST',
          url: '/v1/jobs/calendar-sync',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify(reservation('res-anonymous')),
        }),
      401,
    );
    expect(answer.detail).toMatch(/API key is required/);
  });

  it('an unknown key -> 401, through either header', async () => {
    await expectRefused('res-bad-key', () => api.post(reservation('res-bad-key'), { authorization: 'Bearer jf_nope' }), 401);
    await expectRefused(
      'res-bad-key',
      () => api.post(reservation('res-bad-key'), { authorization: '', 'x-api-key': 'jf_nope' }),
      401,
    );
  });

  it('a revoked key -> 401 within seconds, even right after it was used', async () => {
    const { id, key } = await createApiKey(api.testDb.database.db, { tenantId: 'acme', name: 'doomed', scopes: ['jobs:read'] });
    expect((await api.get('/v1/sync/reservation/nothing', key)).statusCode).toBe(404);
    await revokeApiKey(api.testDb.database.db, id);
    const deadline = Date.now() + 10_000;
    let status = 0;
    while (Date.now() < deadline && status !== 401) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await api.get('/v1/sync/reservation/nothing', key)).statusCode;
    }
    expect(status).toBe(401);
    await expectRefused('res-revoked', () => api.post(reservation('res-revoked'), { authorization: `Bearer ${key}` }), 401);
  });

  it('a key without jobs:write -> 403', async () => {
    await expectRefused('res-reader', () => api.post(reservation('res-reader'), { authorization: `Bearer ${api.keys.reader}` }), 403);
  });

  it.each([
    ['with a space', 'two words'],
    ['too long', 'k'.repeat(256)],
    ['empty', ''],
    ['not ASCII', 'clé'],
  ])('an Idempotency-Key %s -> 400', async (_what, value) => {
    const problem = await expectRefused(
      'res-bad-header',
      () => api.post(reservation('res-bad-header'), { 'idempotency-key': value }),
      400,
    );
    expect(fieldErrors(problem)).toEqual(['idempotency-key']);
  });

  it('an unknown route -> 404 problem', async () => {
    const answer = await api.get('/v1/nothing-here');
    expect(answer.statusCode).toBe(404);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});
