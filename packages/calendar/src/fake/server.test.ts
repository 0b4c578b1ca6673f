import { createSign, generateKeyPairSync } from 'node:crypto';
import { startFakeCalendar, type FakeCalendar } from './index';

const CALENDAR_ID = 'restaurant@example.com';
const AUTH = { authorization: 'Bearer test-token' };
const times = { start: { dateTime: '2030-05-01T20:00:00Z' }, end: { dateTime: '2030-05-01T22:00:00Z' } };

describe('fake Google Calendar (raw HTTP)', () => {
  let fake: FakeCalendar;
  const eventsUrl = (eventId?: string) =>
    `${fake.rootUrl}calendar/v3/calendars/${encodeURIComponent(CALENDAR_ID)}/events${eventId ? `/${eventId}` : ''}`;

  async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = AUTH) {
    const response = await fetch(url, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as unknown) : undefined };
  }

  beforeAll(async () => {
    fake = await startFakeCalendar();
  });
  afterEach(() => fake.reset());
  afterAll(() => fake.close());

  it('refuses event requests without a bearer token with 401 and Google\'s error body', async () => {
    const missing = await call('GET', eventsUrl('abcde'), undefined, {});
    expect(missing.status).toBe(401);
    expect(missing.body).toMatchObject({
      error: { code: 401, errors: [{ domain: 'global', reason: 'required', location: 'Authorization' }] },
    });
    const malformed = await call('GET', eventsUrl('abcde'), undefined, { authorization: 'Basic dXNlcjpwYXNz' });
    expect(malformed).toMatchObject({
      status: 401,
      body: { error: { message: 'Invalid Credentials', errors: [{ reason: 'authError' }] } },
    });
    expect(fake.requestCount('GET')).toBe(2);
  });

  it('stores events under the percent-decoded calendar id, with Google\'s server-set fields', async () => {
    const created = await call('POST', eventsUrl(), { id: 'abcde', summary: 'Dinner', ...times });
    expect(created).toMatchObject({
      status: 200,
      body: {
        kind: 'calendar#event',
        id: 'abcde',
        status: 'confirmed',
        iCalUID: 'abcde@google.com',
        organizer: { email: CALENDAR_ID },
      },
    });
    expect(created.body).toEqual(
      expect.objectContaining({
        etag: expect.stringMatching(/^"\d+"$/),
        created: expect.any(String),
        updated: expect.any(String),
        htmlLink: expect.any(String),
      }),
    );
    expect(fake.listEvents(CALENDAR_ID)).toHaveLength(1);
    expect(fake.listEvents('someone-else@example.com')).toEqual([]);
  });

  it('generates a base32hex id when the client sends none', async () => {
    const created = await call('POST', eventsUrl(), { summary: 'Dinner', ...times });
    expect(created.body).toMatchObject({ id: expect.stringMatching(/^[a-v0-9]{26}$/) });
  });

  it.each([
    ['4 characters', 'abcd'],
    ['uppercase letters', 'ABCDE'],
    ['letters past v', 'wxyz0'],
    ['a hyphen', 'abc-de'],
    ['1025 characters', 'a'.repeat(1025)],
  ])('refuses a client-chosen id with %s with 400 invalid', async (_case, id) => {
    const refused = await call('POST', eventsUrl(), { id, ...times });
    expect(refused).toMatchObject({
      status: 400,
      body: { error: { message: 'Invalid resource id value.', errors: [{ reason: 'invalid' }] } },
    });
    expect(fake.insertCount()).toBe(0);
  });

  it('answers a second insert of the same id, deleted or not, with 409 duplicate', async () => {
    await call('POST', eventsUrl(), { id: 'abcde', ...times });
    const duplicate = await call('POST', eventsUrl(), { id: 'abcde', ...times });
    expect(duplicate).toEqual({
      status: 409,
      headers: expect.anything(),
      body: {
        error: {
          code: 409,
          message: 'The requested identifier already exists.',
          errors: [{ domain: 'global', reason: 'duplicate', message: 'The requested identifier already exists.' }],
        },
      },
    });
    await call('DELETE', eventsUrl('abcde'));
    expect((await call('POST', eventsUrl(), { id: 'abcde', ...times })).status).toBe(409);
    expect(fake.insertCount('abcde')).toBe(1);
  });

  it('requires start and end on insert', async () => {
    const refused = await call('POST', eventsUrl(), { id: 'abcde', start: times.start });
    expect(refused).toMatchObject({
      status: 400,
      body: { error: { message: 'Missing end time.', errors: [{ reason: 'required' }] } },
    });
  });

  it('keeps a deleted event readable as cancelled; deleting it again is 410, an unknown one 404', async () => {
    await call('POST', eventsUrl(), { id: 'abcde', ...times });
    expect((await call('DELETE', eventsUrl('abcde'))).status).toBe(204);
    expect(await call('GET', eventsUrl('abcde'))).toMatchObject({ status: 200, body: { id: 'abcde', status: 'cancelled' } });
    const answer = (status: number, reason: string) => ({ status, body: { error: { errors: [{ reason }] } } });
    expect(await call('DELETE', eventsUrl('abcde'))).toMatchObject(answer(410, 'deleted'));
    expect(await call('DELETE', eventsUrl('fghij'))).toMatchObject(answer(404, 'notFound'));
    expect(await call('GET', eventsUrl('fghij'))).toMatchObject({ status: 404 });
  });

  it('patches by merging objects and replacing arrays, and a confirmed status restores a deleted event', async () => {
    await call('POST', eventsUrl(), {
      id: 'abcde',
      summary: 'Dinner',
      attendees: [{ email: 'ana@example.com' }, { email: 'bo@example.com' }],
      extendedProperties: { private: { a: '1', b: '2' } },
      ...times,
    });
    await call('DELETE', eventsUrl('abcde'));
    const patched = await call('PATCH', eventsUrl('abcde'), {
      status: 'confirmed',
      attendees: [{ email: 'cy@example.com' }],
      extendedProperties: { private: { b: '3' } },
    });
    expect(patched).toMatchObject({
      status: 200,
      body: {
        status: 'confirmed',
        summary: 'Dinner',
        attendees: [{ email: 'cy@example.com' }],
        extendedProperties: { private: { a: '1', b: '3' } },
      },
    });
  });

  it('replaces the writable fields on PUT', async () => {
    await call('POST', eventsUrl(), { id: 'abcde', summary: 'Dinner', location: 'Terrace', ...times });
    const updated = await call('PUT', eventsUrl('abcde'), { summary: 'Lunch', ...times });
    expect(updated).toMatchObject({ status: 200, body: { id: 'abcde', summary: 'Lunch', status: 'confirmed' } });
    expect(updated.body).not.toHaveProperty('location');
  });

  it('answers malformed JSON with 400 parseError and an oversized body with 413', async () => {
    expect(await call('POST', eventsUrl(), '{"summary":')).toMatchObject({
      status: 400,
      body: { error: { message: 'Parse Error', errors: [{ reason: 'parseError' }] } },
    });
    const oversized = { id: 'abcde', description: 'x'.repeat(2 * 1024 * 1024), ...times };
    expect(await call('POST', eventsUrl(), oversized)).toMatchObject({ status: 413 });
    expect(fake.insertCount()).toBe(0);
  });

  it('answers the next N event requests with the injected fault, then serves again', async () => {
    fake.failNext(2, { status: 403, reason: 'userRateLimitExceeded', retryAfterSeconds: 3 });
    const first = await call('GET', eventsUrl('abcde'));
    expect(first).toMatchObject({
      status: 403,
      body: {
        error: { code: 403, message: 'User Rate Limit Exceeded', errors: [{ domain: 'usageLimits', reason: 'userRateLimitExceeded' }] },
      },
    });
    expect(first.headers.get('retry-after')).toBe('3');
    expect((await call('GET', eventsUrl('abcde'))).status).toBe(403);
    expect((await call('GET', eventsUrl('abcde'))).status).toBe(404);
    expect(fake.requestCount()).toBe(3);
  });

  it('uses Google\'s default reasons for faults: rateLimitExceeded for 403 and 429, backendError for 5xx', async () => {
    fake.failNext(1, { status: 429 });
    fake.failNext(1, { status: 503 });
    expect(await call('GET', eventsUrl('abcde'))).toMatchObject({
      status: 429,
      body: { error: { message: 'Rate Limit Exceeded', errors: [{ domain: 'usageLimits', reason: 'rateLimitExceeded' }] } },
    });
    expect(await call('GET', eventsUrl('abcde'))).toMatchObject({
      status: 503,
      body: { error: { errors: [{ reason: 'backendError' }] } },
    });
  });

  it('confines a scoped outage to the requests of its method and calendar', async () => {
    await call('POST', eventsUrl(), { id: 'abcde', summary: 'Dinner', ...times });
    const otherCalendar = `${fake.rootUrl}calendar/v3/calendars/other%40example.com/events`;
    await call('POST', otherCalendar, { id: 'fghij', summary: 'Lunch', ...times });
    fake.setOutage({ status: 503 }, { method: 'PATCH', calendarId: CALENDAR_ID });
    expect((await call('PATCH', eventsUrl('abcde'), { summary: 'Supper' })).status).toBe(503);
    expect((await call('GET', eventsUrl('abcde'))).status).toBe(200);
    expect((await call('PATCH', `${otherCalendar}/fghij`, { summary: 'Brunch' })).status).toBe(200);
    fake.setOutage(null);
    expect((await call('PATCH', eventsUrl('abcde'), { summary: 'Supper' })).status).toBe(200);
  });

  it('applies a request before its delayed answer, as a slow network would', async () => {
    fake.setLatency(300);
    const answer = call('POST', eventsUrl(), { id: 'abcde', ...times });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(fake.insertCount('abcde')).toBe(1);
    expect((await answer).status).toBe(200);
  });
});

describe('fake token endpoint', () => {
  let fake: FakeCalendar;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

  function assertion(claims: Record<string, unknown>, header: Record<string, unknown> = { alg: 'RS256', typ: 'JWT' }): string {
    const encode = (part: unknown) => Buffer.from(JSON.stringify(part)).toString('base64url');
    const signingInput = `${encode(header)}.${encode(claims)}`;
    return `${signingInput}.${createSign('RSA-SHA256').update(signingInput).sign(privateKey, 'base64url')}`;
  }

  function validClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: 'jobfleet@test-project.iam.gserviceaccount.com',
      scope: 'https://www.googleapis.com/auth/calendar.events',
      aud: 'https://oauth2.googleapis.com/token',
      iat: now,
      exp: now + 3600,
      ...overrides,
    };
  }

  async function exchange(form: Record<string, string>) {
    const response = await fetch(fake.tokenUrl, { method: 'POST', body: new URLSearchParams(form) });
    return { status: response.status, body: await response.json() };
  }

  const jwtBearer = (jwt: string) => ({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: jwt });

  beforeAll(async () => {
    fake = await startFakeCalendar();
  });
  afterAll(() => fake.close());

  it('grants a bearer token for a well-formed assertion addressed to Google or to itself', async () => {
    const granted = await exchange(jwtBearer(assertion(validClaims())));
    expect(granted).toEqual({ status: 200, body: { access_token: expect.any(String), expires_in: 3600, token_type: 'Bearer' } });
    expect((await exchange(jwtBearer(assertion(validClaims({ aud: fake.tokenUrl }))))).status).toBe(200);
    expect(fake.issuedTokens()).toContain((granted.body as { access_token: string }).access_token);
  });

  it.each([
    ['not a JWT', 'not-a-jwt'],
    ['an HS256 header', () => assertion(validClaims(), { alg: 'HS256' })],
    ['no scope', () => assertion(validClaims({ scope: undefined }))],
    ['another audience', () => assertion(validClaims({ aud: 'https://example.com/token' }))],
    ['an expired assertion', () => assertion(validClaims({ iat: 1_000_000, exp: 1_003_600 }))],
    ['a lifetime over an hour', () => assertion(validClaims({ exp: Math.floor(Date.now() / 1000) + 7200 }))],
  ])('refuses %s with 400 invalid_grant', async (_case, jwt) => {
    const refused = await exchange(jwtBearer(typeof jwt === 'string' ? jwt : jwt()));
    expect(refused).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_description: expect.any(String) } });
  });

  it('refuses other grant types with 400 unsupported_grant_type', async () => {
    const refused = await exchange({ grant_type: 'client_credentials' });
    expect(refused).toMatchObject({ status: 400, body: { error: 'unsupported_grant_type' } });
  });
});

describe('fake Calendar lifecycle', () => {
  it('closes promptly with idle keep-alive connections and in-flight delayed answers', async () => {
    const fake = await startFakeCalendar();
    const url = `${fake.rootUrl}calendar/v3/calendars/primary/events/abcde`;
    await fetch(url, { headers: AUTH }).then((r) => r.text()); // leaves an idle keep-alive socket
    fake.setLatency(60_000);
    const pending = fetch(url, { headers: AUTH }).then(
      () => 'answered',
      () => 'dropped',
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    await fake.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await pending).toBe('dropped');
  });

  it('listens on the requested host and answers at rootUrl', async () => {
    const fake = await startFakeCalendar({ host: '127.0.0.1', port: 0 });
    try {
      expect(fake.rootUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      expect(fake.tokenUrl).toBe(`${fake.rootUrl}token`);
    } finally {
      await fake.close();
    }
  });
});
