import { DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';
import { WsaaAlreadyAuthenticatedError } from './errors';
import { createTestCertificate, startAfipSimulator, type AfipSimulator } from './simulator/index';
import { buildLoginTicketRequest, createWsaaClient, signLoginTicketRequest, type WsaaClient } from './wsaa';
import { parseXml, childElement, childText } from './xml';

const CUIT = 20_123_456_786;

describe('WSAA client (soap against the AFIP simulator)', () => {
  const credentials = createTestCertificate({ cuit: CUIT });
  let simulator: AfipSimulator;
  let wsaa: WsaaClient;
  const signedTra = (service = 'wsfe', now = new Date(Date.now() - 60_000)) =>
    signLoginTicketRequest(buildLoginTicketRequest({ service, now, ttlSeconds: 600 }), credentials);

  beforeAll(async () => {
    simulator = await startAfipSimulator();
    wsaa = createWsaaClient({ url: simulator.wsaaUrl, timeoutMs: 5000 });
  });
  afterEach(() => simulator.reset());
  afterAll(() => simulator.close());

  it('builds a TRA with a 32-bit uniqueId, both times and the service', () => {
    const now = new Date('2030-05-01T12:00:00.000Z');
    const root = parseXml(buildLoginTicketRequest({ service: 'wsfe', now, ttlSeconds: 600 }));
    const header = childElement(root, 'header');
    expect(root).toMatchObject({ name: 'loginTicketRequest', attributes: { version: '1.0' } });
    expect(childText(header, 'uniqueId')).toBe(String(now.getTime() / 1000));
    expect(childText(header, 'generationTime')).toBe('2030-05-01T12:00:00Z');
    expect(childText(header, 'expirationTime')).toBe('2030-05-01T12:10:00Z');
    expect(childText(root, 'service')).toBe('wsfe');
  });

  it('logs in with a signed TRA and returns the token, sign and the ticket\'s 12 h validity', async () => {
    const before = Date.now();
    const ticket = await wsaa.login(signedTra());
    expect(ticket.token).toMatch(/^[A-Za-z0-9+/=]{40,}$/);
    expect(ticket.sign).toMatch(/^[A-Za-z0-9+/=]{40,}$/);
    expect(ticket.generatedAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(ticket.expiresAt.getTime() - ticket.generatedAt.getTime()).toBe(12 * 3600_000);
    expect(simulator.loginCount(CUIT)).toBe(1);
  });

  it('refuses a second login while the ticket is valid with WsaaAlreadyAuthenticatedError (retryable)', async () => {
    await wsaa.login(signedTra());
    const error = await wsaa.login(signedTra()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WsaaAlreadyAuthenticatedError);
    expect(error).toMatchObject({ retryable: true, details: { faultCode: 'coe.alreadyAuthenticated', status: 500 } });
    expect((error as Error).message).toContain('El CEE ya posee un TA valido');
    expect(simulator.loginCount(CUIT)).toBe(1);
  });

  it('issues a new ticket once the previous one expired', async () => {
    const first = await wsaa.login(signedTra());
    simulator.expireTickets();
    const second = await wsaa.login(signedTra());
    expect(second.token).not.toBe(first.token);
  });

  it('fails permanently when the CMS signature does not match the certificate', async () => {
    const other = createTestCertificate({ cuit: CUIT });
    const forged = signLoginTicketRequest(buildLoginTicketRequest({ service: 'wsfe', now: new Date(), ttlSeconds: 600 }), {
      certificatePem: credentials.certificatePem,
      privateKeyPem: other.privateKeyPem,
    });
    const error = await wsaa.login(forged).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ code: 'AFIP_WSAA_CMS_SIGN_INVALID', details: { faultCode: 'cms.sign.invalid' } });
  });

  it('fails permanently on something that is no CMS and on an unknown service', async () => {
    await expect(wsaa.login('bm90IGEgY21z')).rejects.toMatchObject({ code: 'AFIP_WSAA_CMS_BAD' });
    await expect(wsaa.login(signedTra('no-such-service'))).rejects.toMatchObject({ code: 'AFIP_WSAA_WSN_NOTFOUND' });
  });

  it('fails permanently on a TRA generated in the future', async () => {
    const error = await wsaa.login(signedTra('wsfe', new Date(Date.now() + 3600_000))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ details: { faultCode: 'xml.generationTime.invalid' } });
  });

  it.each([
    ['soap-fault', { faultCode: 'wsn.unavailable', status: 500 }],
    ['http-500', { status: 500 }],
    ['service-unavailable', { status: 503 }],
    ['drop-connection', { reason: 'ECONNRESET' }],
  ] as const)('turns a %s from WSAA into a DependencyUnavailableError', async (fault, details) => {
    simulator.failNext(1, fault, 'wsaa');
    const error = await wsaa.login(signedTra()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ dependency: 'afip-wsaa', details: { operation: 'loginCms', ...details } });
    expect(simulator.loginCount()).toBe(0);
  });

  it('gives up on a WSAA slower than timeoutMs with a DependencyUnavailableError', async () => {
    const impatient = createWsaaClient({ url: simulator.wsaaUrl, timeoutMs: 200 });
    simulator.failNext(1, 'hang', 'wsaa');
    const error = await impatient.login(signedTra()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ details: { reason: 'ERR_CANCELED' } });
  });
});
