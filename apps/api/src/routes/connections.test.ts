import { createTestCertificate } from '@jobfleet/afip/simulator';
import { afipIssuerRepository, googleConnectionRepository } from '@jobfleet/db';
import { captureLogs } from '@jobfleet/observability/testing';
import { parseKeyring } from '@jobfleet/secrets';
import type { LightMyRequestResponse } from 'fastify';
import { startTestApi, type TestApi } from '../testing/harness';

const CUIT = 30712345671;
const CUIT_2 = 30709876542;
const BASE = '/v1/admin/tenants/acme/connections';

/** The base64 lines of a PEM, without its armour: none of them may appear in an answer or a log line. */
const pemBody = (pem: string) => pem.split('\n').filter((line) => line.length > 0 && !line.startsWith('-----'));

describe('tenant connection admin routes', () => {
  const logs = captureLogs('trace');
  let api: TestApi;
  // Every secret this file sends, to look for in answers and logs.
  const secrets: string[] = [];
  const issuer = createTestCertificate({ cuit: CUIT });
  const renewed = createTestCertificate({ cuit: CUIT });
  const oauth = { kind: 'oauth-refresh-token', clientId: 'acme-client.apps.example.com', clientSecret: 'GOCSPX-acme-secret-7d2f', refreshToken: '1//acme-refresh-token-5e8a' };
  const staticToken = 'ya29.acme-static-access-token-c41b';
  secrets.push(...pemBody(issuer.certificatePem), ...pemBody(issuer.privateKeyPem), ...pemBody(renewed.certificatePem), ...pemBody(renewed.privateKeyPem));
  secrets.push(oauth.clientSecret, oauth.refreshToken, staticToken, 'token-of-acme', 'token-of-globex');

  beforeAll(async () => {
    api = await startTestApi({ label: 'api-connections', logger: logs.logger });
  });
  afterAll(async () => {
    await api.close();
  });

  const call = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown, key = api.keys.admin) =>
    api.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
  const expectNoSecret = (text: string) => {
    expect(text).not.toMatch(/-----BEGIN|PRIVATE KEY/);
    for (const secret of secrets) expect(text).not.toContain(secret);
  };
  const expectProblem = (answer: LightMyRequestResponse, status: number, type?: string) => {
    expect(answer.statusCode).toBe(status);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    if (type !== undefined) expect(answer.json()).toMatchObject({ type, status });
  };

  it('adds an AFIP issuer (201) and lists it without the certificate or key', async () => {
    const added = await call('POST', `${BASE}/afip-issuers`, { cuit: CUIT, ...issuer });
    expect(added.statusCode).toBe(201);
    const { activeKeyId } = parseKeyring(api.config.secrets.keys, api.config.secrets.activeKeyId);
    expect(added.json()).toMatchObject({ tenantId: 'acme', cuit: CUIT, keyId: activeKeyId, certificate: { subject: expect.stringContaining(`CUIT ${CUIT}`) } });
    expectNoSecret(added.body);
    expect(await afipIssuerRepository.isOwnedBy(api.testDb.database.db, 'acme', CUIT)).toBe(true);

    const listed = await call('GET', BASE);
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toEqual({
      tenantId: 'acme',
      afipIssuers: [added.json()],
      google: expect.objectContaining({ tenantId: 'acme', authKind: 'access-token', access: { policy: 'credential' } }),
    });
    expectNoSecret(listed.body);
  });

  it('refuses a CUIT already registered (409), by the same tenant or another', async () => {
    expectProblem(await call('POST', `${BASE}/afip-issuers`, { cuit: CUIT, ...createTestCertificate({ cuit: CUIT }) }), 409, '/problems/connection');
    const byGlobex = await call('POST', '/v1/admin/tenants/globex/connections/afip-issuers', { cuit: CUIT, ...createTestCertificate({ cuit: CUIT }) }, api.keys.otherAdmin);
    expectProblem(byGlobex, 409, '/problems/connection');
    expect(await afipIssuerRepository.isOwnedBy(api.testDb.database.db, 'globex', CUIT)).toBe(false);
  });

  it("rotates an issuer's certificate (200): the new one is what the worker will read", async () => {
    const before = (await call('GET', BASE)).json().afipIssuers[0];
    const rotated = await call('PUT', `${BASE}/afip-issuers/${CUIT}`, renewed);
    expect(rotated.statusCode).toBe(200);
    expect(rotated.json()).toMatchObject({ cuit: CUIT, id: before.id });
    expect(rotated.json().certificate.fingerprintSha256).not.toBe(before.certificate.fingerprintSha256);
    expectNoSecret(rotated.body);
    const keyring = parseKeyring(api.config.secrets.keys, api.config.secrets.activeKeyId);
    expect(await afipIssuerRepository.credentials(api.testDb.database.db, keyring, 'acme', CUIT)).toEqual(renewed);
  });

  it('removes an issuer (204), after which it is gone (404)', async () => {
    expect((await call('POST', `${BASE}/afip-issuers`, { cuit: CUIT_2, ...createTestCertificate({ cuit: CUIT_2 }) })).statusCode).toBe(201);
    const removed = await call('DELETE', `${BASE}/afip-issuers/${CUIT_2}`);
    expect(removed.statusCode).toBe(204);
    expect(removed.body).toBe('');
    expectProblem(await call('DELETE', `${BASE}/afip-issuers/${CUIT_2}`), 404, '/problems/connection');
    expectProblem(await call('PUT', `${BASE}/afip-issuers/${CUIT_2}`, createTestCertificate({ cuit: CUIT_2 })), 404, '/problems/connection');
    expect((await call('GET', BASE)).json().afipIssuers.map((i: { cuit: number }) => i.cuit)).toEqual([CUIT]);
  });

  it("lets an admin key manage its own tenant only, fleet:admin any, and nothing else", async () => {
    expectProblem(await call('GET', BASE, undefined, api.keys.otherAdmin), 403);
    expectProblem(await call('POST', `${BASE}/afip-issuers`, { cuit: CUIT_2, ...createTestCertificate({ cuit: CUIT_2 }) }, api.keys.otherAdmin), 403);
    expectProblem(await call('DELETE', `${BASE}/afip-issuers/${CUIT}`, undefined, api.keys.otherAdmin), 403);
    expectProblem(await call('GET', BASE, undefined, api.keys.writer), 403);
    expectProblem(await call('GET', BASE, undefined, api.keys.otherTenant), 403);
    expectProblem(await call('GET', BASE, undefined, 'jf_not-a-key'), 401);
    expect(await afipIssuerRepository.isOwnedBy(api.testDb.database.db, 'acme', CUIT)).toBe(true);

    const asFleet = await call('GET', BASE, undefined, api.keys.otherOperator);
    expect(asFleet.statusCode).toBe(200);
    expect(asFleet.json().afipIssuers.map((i: { cuit: number }) => i.cuit)).toEqual([CUIT]);
    expect((await call('GET', '/v1/admin/tenants/globex/connections', undefined, api.keys.otherAdmin)).statusCode).toBe(200);
  });

  it('answers 404 for an unknown tenant, 400 for a bad path and 422 for a bad body', async () => {
    expectProblem(await call('GET', '/v1/admin/tenants/nobody/connections', undefined, api.keys.otherOperator), 404);
    // An admin key does not learn whether another tenant exists.
    expectProblem(await call('GET', '/v1/admin/tenants/nobody/connections'), 403);
    expectProblem(await call('DELETE', `${BASE}/afip-issuers/30712345672`), 400, '/problems/validation');
    expectProblem(await call('PUT', `${BASE}/afip-issuers/not-a-cuit`, renewed), 400, '/problems/validation');
    expectProblem(await call('GET', '/v1/admin/tenants/bad%20id/connections', undefined, api.keys.otherOperator), 400, '/problems/validation');

    const badCuit = await call('POST', `${BASE}/afip-issuers`, { cuit: 30712345672, ...issuer });
    expectProblem(badCuit, 422, '/problems/validation');
    expect(badCuit.json().errors.map((e: { path: string }) => e.path)).toEqual(['cuit']);
    const notPem = await call('POST', `${BASE}/afip-issuers`, { cuit: CUIT_2, certificatePem: 'hello', privateKeyPem: 'world' });
    expectProblem(notPem, 422, '/problems/validation');
    expect(notPem.json().errors.map((e: { path: string }) => e.path).sort()).toEqual(['certificatePem', 'privateKeyPem']);
    // PEM-shaped but not a certificate: refused by the certificate check.
    const garbage = `-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n`;
    expectProblem(await call('POST', `${BASE}/afip-issuers`, { cuit: CUIT_2, certificatePem: garbage, privateKeyPem: issuer.privateKeyPem }), 422, '/problems/connection');
    const mismatched = createTestCertificate({ cuit: CUIT_2 });
    const wrongKey = await call('POST', `${BASE}/afip-issuers`, { cuit: CUIT_2, certificatePem: mismatched.certificatePem, privateKeyPem: issuer.privateKeyPem });
    expectProblem(wrongKey, 422, '/problems/connection');
    expect(wrongKey.json().detail).toBe('the key does not belong to the certificate');
    const otherCuit = await call('POST', `${BASE}/afip-issuers`, { cuit: CUIT_2, ...createTestCertificate({ cuit: CUIT }) });
    expectProblem(otherCuit, 422, '/problems/connection');
    expect(await afipIssuerRepository.isOwnedBy(api.testDb.database.db, 'acme', CUIT_2)).toBe(false);
    expectNoSecret([badCuit.body, notPem.body, wrongKey.body, otherCuit.body].join('\n'));
  });

  it('replaces the Google connection: remove, add (201), duplicate (409), patch with an access token (test env), remove', async () => {
    const { db } = api.testDb.database;
    expect((await call('DELETE', `${BASE}/google`)).statusCode).toBe(204);
    expect((await call('GET', BASE)).json().google).toBeNull();
    expectProblem(await call('DELETE', `${BASE}/google`), 404, '/problems/connection');
    expectProblem(await call('PATCH', `${BASE}/google`, { calendars: ['a@example.com'] }), 404, '/problems/connection');

    const added = await call('POST', `${BASE}/google`, { credential: oauth, calendars: ['acme@example.com', 'acme@example.com', 'bar@example.com'] });
    expect(added.statusCode).toBe(201);
    expect(added.json()).toMatchObject({
      tenantId: 'acme',
      authKind: 'oauth-refresh-token',
      principal: oauth.clientId,
      access: { policy: 'allowlist', calendars: ['acme@example.com', 'bar@example.com'] },
    });
    expectNoSecret(added.body);
    expectProblem(await call('POST', `${BASE}/google`, { credential: oauth, calendars: 'credential' }), 409, '/problems/connection');
    expectProblem(await call('POST', `${BASE}/google`, { credential: { kind: 'oauth-refresh-token', clientId: 'x' }, calendars: 'credential' }), 422, '/problems/validation');
    expectProblem(await call('PATCH', `${BASE}/google`, {}), 422, '/problems/validation');
    // A NUL or a lone surrogate in a calendar id is refused, not a Postgres 500 (found by the fuzz).
    for (const calendar of ['a\u0000b@example.com', '\uD800@example.com']) {
      expectProblem(await call('PATCH', `${BASE}/google`, { calendars: [calendar] }), 422, '/problems/validation');
    }

    const patched = await call('PATCH', `${BASE}/google`, { credential: { kind: 'access-token', token: staticToken } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ authKind: 'access-token', access: { policy: 'allowlist', calendars: ['acme@example.com', 'bar@example.com'] } });
    expectNoSecret(patched.body);
    const keyring = parseKeyring(api.config.secrets.keys, api.config.secrets.activeKeyId);
    expect((await googleConnectionRepository.credential(db, keyring, 'acme'))?.credential).toEqual({ kind: 'access-token', token: staticToken });

    const listed = await call('GET', BASE);
    expect(listed.json().google).toMatchObject({ authKind: 'access-token', principal: 'static access token' });
    expectNoSecret(listed.body);

    expect((await call('DELETE', `${BASE}/google`)).statusCode).toBe(204);
    expect(await googleConnectionRepository.find(db, 'acme')).toBeUndefined();
  });

  it('never writes secret material to its logs, even at trace level', () => {
    const lines = logs.lines();
    // The capture works: every add, rotation and patch above was logged as a request.
    const urls = lines.map((line) => (line.req as { url?: string } | undefined)?.url).filter((url) => url !== undefined);
    expect(urls).toEqual(expect.arrayContaining([`${BASE}/afip-issuers`, `${BASE}/afip-issuers/${CUIT}`, `${BASE}/google`]));
    for (const line of lines) expectNoSecret(JSON.stringify(line));
  });
});

describe('tenant connection admin routes in production', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-connections-prod', env: { NODE_ENV: 'production', SECRETS_KEYS: `prod:${Buffer.alloc(32, 9).toString('base64')}` } });
  });
  afterAll(async () => {
    await api.close();
  });

  it('refuses a static access token (422) and keeps the existing credential', async () => {
    const answer = await api.app.inject({
      method: 'PATCH',
      url: `${BASE}/google`,
      headers: { authorization: `Bearer ${api.keys.admin}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ credential: { kind: 'access-token', token: 'ya29.prod-token' } }),
    });
    expect(answer.statusCode).toBe(422);
    expect(answer.json()).toMatchObject({ type: '/problems/connection', detail: expect.stringContaining('Static access tokens') });
    const keyring = parseKeyring(api.config.secrets.keys, api.config.secrets.activeKeyId);
    expect((await googleConnectionRepository.credential(api.testDb.database.db, keyring, 'acme'))?.credential).toEqual({ kind: 'access-token', token: 'token-of-acme' });
  });
});
