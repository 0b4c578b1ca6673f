import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DependencyUnavailableError, PermanentError, RateLimitedError } from '@jobfleet/contracts';
import { createCalendarClient, type CalendarClient, type CalendarEventInput } from './client';
import { startFakeCalendar, type FakeCalendar } from './fake/index';

const CALENDAR_ID = 'restaurant@example.com';
const EVENT_ID = 'abcdef0123456789';

const dinner: CalendarEventInput = {
  summary: 'Dinner for 4',
  start: { dateTime: '2030-05-01T20:00:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
  end: { dateTime: '2030-05-01T22:00:00-03:00', timeZone: 'America/Argentina/Buenos_Aires' },
  attendees: [{ email: 'ana@example.com', displayName: 'Ana' }],
  extendedProperties: { private: { jobfleetVersion: '1' } },
};

function accessTokenClient(fake: FakeCalendar, token = 'test-token', timeoutMs = 5000): CalendarClient {
  return createCalendarClient({ rootUrl: fake.rootUrl, credential: { kind: 'access-token', token }, tokenUrl: fake.tokenUrl, timeoutMs });
}

describe('calendar client (googleapis against the fake Calendar)', () => {
  let fake: FakeCalendar;
  let client: CalendarClient;

  beforeAll(async () => {
    fake = await startFakeCalendar();
    client = accessTokenClient(fake);
  });
  afterEach(() => fake.reset());
  afterAll(() => fake.close());

  it('inserts, reads, patches and deletes an event', async () => {
    const inserted = await client.insertEvent(CALENDAR_ID, { ...dinner, id: EVENT_ID });
    expect(inserted).toEqual({
      kind: 'created',
      event: expect.objectContaining({ id: EVENT_ID, status: 'confirmed', summary: 'Dinner for 4' }),
    });

    const read = await client.getEvent(CALENDAR_ID, EVENT_ID);
    expect(read).toMatchObject({ ...dinner, id: EVENT_ID, status: 'confirmed' });
    expect(read?.etag).toEqual(expect.any(String));

    const patched = await client.patchEvent(CALENDAR_ID, EVENT_ID, { summary: 'Dinner for 6' });
    expect(patched).toMatchObject({ summary: 'Dinner for 6', attendees: dinner.attendees });
    expect(patched.etag).not.toBe(read?.etag);

    await expect(client.deleteEvent(CALENDAR_ID, EVENT_ID)).resolves.toBe('deleted');
    await expect(client.getEvent(CALENDAR_ID, EVENT_ID)).resolves.toMatchObject({ id: EVENT_ID, status: 'cancelled' });
    expect(fake.listEvents(CALENDAR_ID)).toEqual([expect.objectContaining({ id: EVENT_ID, status: 'cancelled' })]);
  });

  it('reports an id that exists, even deleted, as a duplicate instead of creating a second event', async () => {
    await client.insertEvent(CALENDAR_ID, { ...dinner, id: EVENT_ID });
    await expect(client.insertEvent(CALENDAR_ID, { ...dinner, id: EVENT_ID })).resolves.toEqual({ kind: 'duplicate' });
    await client.deleteEvent(CALENDAR_ID, EVENT_ID);
    await expect(client.insertEvent(CALENDAR_ID, { ...dinner, id: EVENT_ID })).resolves.toEqual({ kind: 'duplicate' });
    expect(fake.insertCount()).toBe(1);
  });

  it('answers null for an unknown event and gone when deleting an unknown or deleted one', async () => {
    await expect(client.getEvent(CALENDAR_ID, EVENT_ID)).resolves.toBeNull();
    await expect(client.deleteEvent(CALENDAR_ID, EVENT_ID)).resolves.toBe('gone');
    await client.insertEvent(CALENDAR_ID, { ...dinner, id: EVENT_ID });
    await client.deleteEvent(CALENDAR_ID, EVENT_ID);
    await expect(client.deleteEvent(CALENDAR_ID, EVENT_ID)).resolves.toBe('gone');
  });

  it('turns 429 into a RateLimitedError carrying the Retry-After hint, without retrying', async () => {
    fake.failNext(1, { status: 429, retryAfterSeconds: 7 });
    const error = await client.getEvent(CALENDAR_ID, EVENT_ID).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error).toMatchObject({
      dependency: 'google-calendar',
      retryAfterMs: 7000,
      details: { status: 429, reason: 'rateLimitExceeded', operation: 'get' },
    });
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect(fake.requestCount()).toBe(1);
  });

  it.each(['rateLimitExceeded', 'userRateLimitExceeded'])('turns 403 %s into a RateLimitedError', async (reason) => {
    fake.failNext(1, { status: 403, reason });
    const error = await client.insertEvent(CALENDAR_ID, { ...dinner, id: EVENT_ID }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error).toMatchObject({ retryAfterMs: undefined, details: { status: 403, reason, operation: 'insert' } });
    expect(fake.insertCount()).toBe(0);
  });

  it('turns any other 403 into a PermanentError', async () => {
    fake.failNext(1, { status: 403, reason: 'forbidden' });
    const error = await client.getEvent(CALENDAR_ID, EVENT_ID).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ code: 'CALENDAR_FORBIDDEN', details: { status: 403, reason: 'forbidden' } });
  });

  it.each([500, 502, 503] as const)('turns %d into a DependencyUnavailableError, sending the request once', async (status) => {
    fake.failNext(1, { status });
    const error = await client.patchEvent(CALENDAR_ID, EVENT_ID, { summary: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ details: { status, reason: 'backendError', operation: 'patch' } });
    expect(fake.requestCount('PATCH')).toBe(1);
  });

  it('turns an id Google refuses (400 invalid) into a PermanentError with status, reason and cause', async () => {
    const error = await client.insertEvent(CALENDAR_ID, { ...dinner, id: 'Not-Base32hex' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({
      code: 'CALENDAR_INVALID',
      retryable: false,
      details: { status: 400, reason: 'invalid', operation: 'insert' },
    });
    expect((error as Error).message).toContain('Invalid resource id value.');
    expect((error as Error).cause).toBeInstanceOf(Error);
  });

  it('gives up on a response slower than timeoutMs with a DependencyUnavailableError', async () => {
    const impatient = accessTokenClient(fake, 'test-token', 200);
    fake.setLatency(2000);
    const error = await impatient.getEvent(CALENDAR_ID, EVENT_ID).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ details: { reason: 'TimeoutError', operation: 'get' } });
    expect(fake.requestCount()).toBe(1);
  });

  it('turns a refused connection into a DependencyUnavailableError', async () => {
    const stopped = await startFakeCalendar();
    await stopped.close();
    const error = await accessTokenClient(stopped).getEvent(CALENDAR_ID, EVENT_ID).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ details: { reason: 'ECONNREFUSED' } });
  });

  it('fails permanently when Google refuses the credentials (401)', async () => {
    // A blank token leaves "Authorization: Bearer" without credentials.
    const error = await accessTokenClient(fake, ' ').getEvent(CALENDAR_ID, EVENT_ID).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ code: 'CALENDAR_AUTH_ERROR', details: { status: 401, reason: 'authError' } });
  });

  it('sends the configured access token as the bearer token', async () => {
    await client.getEvent(CALENDAR_ID, EVENT_ID);
    expect(fake.receivedTokens()).toEqual(['test-token']);
  });
});

describe('calendar client with a service account', () => {
  let fake: FakeCalendar;
  let serviceAccount: { kind: 'service-account'; clientEmail: string; privateKey: string };

  beforeAll(async () => {
    fake = await startFakeCalendar();
    const { privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    serviceAccount = { kind: 'service-account', clientEmail: 'jobfleet@test-project.iam.gserviceaccount.com', privateKey };
  });
  afterEach(() => fake.reset());
  afterAll(async () => {
    await fake.close();
  });

  it('exchanges a signed assertion at the configured token URL and sends the token it got', async () => {
    const client = createCalendarClient({
      rootUrl: fake.rootUrl,
      credential: serviceAccount,
      tokenUrl: fake.tokenUrl,
      timeoutMs: 5000,
    });
    await client.insertEvent(CALENDAR_ID, { ...dinner, id: EVENT_ID });
    await client.getEvent(CALENDAR_ID, EVENT_ID);

    const issued = fake.issuedTokens();
    expect(issued).toHaveLength(1); // cached until it expires
    expect(fake.receivedTokens()).toEqual([issued[0], issued[0]]);
    expect(fake.insertCount(EVENT_ID)).toBe(1);
  });

  it('fails permanently when the token endpoint answers 4xx, never mistaking its 404 for a missing event', async () => {
    const client = createCalendarClient({
      rootUrl: fake.rootUrl,
      credential: serviceAccount,
      tokenUrl: `${fake.rootUrl}no-token-here`,
      timeoutMs: 5000,
    });
    const error = await client.getEvent(CALENDAR_ID, EVENT_ID).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ code: 'CALENDAR_TOKEN_NOT_FOUND', details: { status: 404, operation: 'get', tokenExchange: true } });
    expect(fake.requestCount()).toBe(0);
  });

  it('sends a request Google refuses once: no refresh-and-resend by the auth library', async () => {
    const client = createCalendarClient({
      rootUrl: fake.rootUrl,
      credential: serviceAccount,
      tokenUrl: fake.tokenUrl,
      timeoutMs: 5000,
    });
    fake.failNext(1, { status: 403, reason: 'forbidden' });
    await expect(client.getEvent(CALENDAR_ID, EVENT_ID)).rejects.toBeInstanceOf(PermanentError);
    expect(fake.requestCount()).toBe(1);
    expect(fake.issuedTokens()).toHaveLength(1);
  });

  it('tries a failing token exchange once and reports the dependency unavailable', async () => {
    let exchanges = 0;
    const failingTokenEndpoint = createServer((_request, response) => {
      exchanges += 1;
      response.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"temporarily_unavailable"}');
    });
    await new Promise<void>((resolve) => failingTokenEndpoint.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = failingTokenEndpoint.address() as AddressInfo;
      const client = createCalendarClient({
        rootUrl: fake.rootUrl,
        credential: serviceAccount,
        tokenUrl: `http://127.0.0.1:${port}/token`,
        timeoutMs: 5000,
      });
      const error = await client.getEvent(CALENDAR_ID, EVENT_ID).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DependencyUnavailableError);
      expect(error).toMatchObject({ details: { status: 503, tokenExchange: true } });
      expect(exchanges).toBe(1);
      expect(fake.requestCount()).toBe(0);
    } finally {
      await new Promise((resolve) => failingTokenEndpoint.close(resolve));
    }
  });

  it('exchanges a refresh token at the configured token URL (OAuth connection)', async () => {
    const client = createCalendarClient({
      rootUrl: fake.rootUrl,
      credential: { kind: 'oauth-refresh-token', clientId: 'client-1', clientSecret: 'client-secret', refreshToken: 'refresh-1' },
      tokenUrl: fake.tokenUrl,
      timeoutMs: 5000,
    });
    await client.insertEvent(CALENDAR_ID, { ...dinner, id: EVENT_ID });
    const issued = fake.issuedTokens();
    expect(issued).toHaveLength(1);
    expect(fake.receivedTokens()).toEqual([issued[0]]);
  });
});
