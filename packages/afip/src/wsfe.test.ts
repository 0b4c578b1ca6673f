import { DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';
import { createTestCertificate, startAfipSimulator, type AfipSimulator } from './simulator/index';
import { buildLoginTicketRequest, createWsaaClient, signLoginTicketRequest } from './wsaa';
import { createWsfeClient, WsfeTokenRejectedError, type WsfeAuth, type WsfeClient, type WsfeInvoice } from './wsfe';

const CUIT = 20_123_456_786;
const PTO_VTA = 3;
const FACTURA_B = 6;

/** Today in Argentina, YYYYMMDD: the simulator, like AFIP, accepts dates around it. */
const today = () => new Date(Date.now() - 3 * 3600_000).toISOString().slice(0, 10).replaceAll('-', '');

const invoice = (cbteNro: number, overrides: Partial<WsfeInvoice> = {}): WsfeInvoice => ({
  ptoVta: PTO_VTA,
  cbteTipo: FACTURA_B,
  cbteNro,
  concept: 1,
  docType: 96,
  docNumber: 30_111_222,
  date: today(),
  amounts: { total: 121, untaxed: 0, net: 100, exempt: 0, iva: 21, otherTaxes: 0 },
  currency: 'PES',
  exchangeRate: 1,
  vat: [{ id: 5, base: 100, amount: 21 }],
  ...overrides,
});

describe('WSFEv1 client (soap against the AFIP simulator)', () => {
  let simulator: AfipSimulator;
  let wsfe: WsfeClient;
  let auth: WsfeAuth;
  /** FECAESolicitar with a lot of one: the voucher's verdict beside the request's errors. */
  const requestOne = async (one: WsfeInvoice, client: WsfeClient = wsfe) => {
    const lot = await client.requestCae(auth, [one]);
    const [voucher] = lot.vouchers;
    if (!voucher) throw new Error('no verdict for the voucher');
    return { ...voucher, errors: lot.errors, events: lot.events };
  };

  beforeAll(async () => {
    simulator = await startAfipSimulator();
    wsfe = createWsfeClient({ url: simulator.wsfeUrl, timeoutMs: 5000 });
  });
  beforeEach(async () => {
    simulator.reset();
    const tra = buildLoginTicketRequest({ service: 'wsfe', now: new Date(Date.now() - 60_000), ttlSeconds: 600 });
    const wsaa = createWsaaClient({ url: simulator.wsaaUrl, timeoutMs: 5000 });
    const ticket = await wsaa.login(signLoginTicketRequest(tra, createTestCertificate({ cuit: CUIT })));
    auth = { token: ticket.token, sign: ticket.sign, cuit: CUIT };
  });
  afterAll(() => simulator.close());

  it('answers FEDummy with OK for all three servers', async () => {
    await expect(wsfe.dummy()).resolves.toEqual({ appServer: 'OK', dbServer: 'OK', authServer: 'OK' });
  });

  it('authorises the next number and finds the voucher afterwards with FECompConsultar', async () => {
    await expect(wsfe.lastAuthorized(auth, PTO_VTA, FACTURA_B)).resolves.toBe(0);

    const result = await requestOne(invoice(1));
    expect(result).toMatchObject({ result: 'A', cbteNro: 1, errors: [], observations: [], events: [] });
    expect(result.cae).toMatch(/^\d{14}$/);
    expect(result.caeDueDate).toMatch(/^\d{8}$/);

    await expect(wsfe.lastAuthorized(auth, PTO_VTA, FACTURA_B)).resolves.toBe(1);
    await expect(wsfe.getInvoice(auth, PTO_VTA, FACTURA_B, 1)).resolves.toEqual({
      ptoVta: PTO_VTA,
      cbteTipo: FACTURA_B,
      cbteNro: 1,
      date: today(),
      docType: 96,
      docNumber: 30_111_222,
      total: 121,
      currency: 'PES',
      result: 'A',
      authorizationCode: result.cae,
      emissionType: 'CAE',
      authorizationDueDate: result.caeDueDate,
      processedAt: expect.stringMatching(/^\d{14}$/),
      observations: [],
    });
    expect(simulator.authorized(CUIT, PTO_VTA, FACTURA_B)).toEqual([{ cbteNro: 1, cae: result.cae, caeDueDate: result.caeDueDate, total: 121 }]);
  });

  it('rejects a number that is not the next one with observation 10016 and authorises nothing', async () => {
    const result = await requestOne(invoice(2));
    expect(result).toMatchObject({ result: 'R', cbteNro: 2, errors: [], observations: [{ code: 10016, message: expect.stringContaining('FECompUltimoAutorizado') }] });
    expect(result.cae).toBeUndefined();
    expect(simulator.authorized(CUIT, PTO_VTA, FACTURA_B)).toEqual([]);
  });

  it('rejects a number already authorised (a duplicate request) with 10016', async () => {
    await requestOne(invoice(1));
    await expect(requestOne(invoice(1))).resolves.toMatchObject({ result: 'R', observations: [{ code: 10016 }] });
    expect(simulator.authorized(CUIT, PTO_VTA, FACTURA_B)).toHaveLength(1);
  });

  it('rejects totals that do not add up with 10048 and a VAT breakdown that does not match with 10023/10061', async () => {
    const badTotal = await requestOne(invoice(1, { amounts: { total: 130, untaxed: 0, net: 100, exempt: 0, iva: 21, otherTaxes: 0 } }));
    expect(badTotal).toMatchObject({ result: 'R', observations: [{ code: 10048 }] });
    const badVat = await requestOne(invoice(1, { vat: [{ id: 5, base: 90, amount: 18.9 }] }));
    expect(badVat.observations.map((o) => o.code)).toEqual([10023, 10061]);
  });

  it('requires the service dates for services (concept 2) and authorises them when given', async () => {
    await expect(requestOne(invoice(1, { concept: 2 }))).resolves.toMatchObject({ result: 'R', observations: [{ code: 10049 }] });
    const service = { from: today(), to: today(), paymentDue: today() };
    await expect(requestOne(invoice(1, { concept: 2, service }))).resolves.toMatchObject({ result: 'A' });
  });

  describe('lots (CantReg > 1)', () => {
    const double = { amounts: { total: 242, untaxed: 0, net: 200, exempt: 0, iva: 42, otherTaxes: 0 }, vat: [{ id: 5, base: 200, amount: 42 }] };

    it('reports the vouchers one request may carry (FECompTotXRequest: 250)', async () => {
      await expect(wsfe.maxVouchersPerRequest(auth)).resolves.toBe(250);
    });

    it('authorises a lot of consecutive vouchers in one request, a CAE each', async () => {
      const lot = await wsfe.requestCae(auth, [invoice(1), invoice(2), invoice(3)]);
      expect(lot).toMatchObject({ result: 'A', errors: [] });
      expect(lot.vouchers.map((v) => [v.cbteNro, v.result])).toEqual([
        [1, 'A'],
        [2, 'A'],
        [3, 'A'],
      ]);
      expect(new Set(lot.vouchers.map((v) => v.cae)).size).toBe(3);
      expect(simulator.requestCount('FECAESolicitar')).toBe(1);
      expect(simulator.authorized(CUIT, PTO_VTA, FACTURA_B).map((v) => v.cae)).toEqual(lot.vouchers.map((v) => v.cae));
    });

    it('answers P when a voucher is rejected: approved before it, unevaluated after it, its number not consumed', async () => {
      simulator.setRejectedTotal(242);
      const lot = await wsfe.requestCae(auth, [invoice(1), invoice(2, double), invoice(3)]);
      expect(lot.result).toBe('P');
      expect(lot.vouchers.map((v) => [v.cbteNro, v.result, v.observations.map((o) => o.code)])).toEqual([
        [1, 'A', []],
        [2, 'R', [10999]],
        [3, 'R', []],
      ]);
      await expect(wsfe.lastAuthorized(auth, PTO_VTA, FACTURA_B)).resolves.toBe(1);
      // The numbers after the last approved one are free: the rest goes again, renumbered.
      await expect(wsfe.requestCae(auth, [invoice(2), invoice(3)])).resolves.toMatchObject({ result: 'A' });
      expect(simulator.authorized(CUIT, PTO_VTA, FACTURA_B).map((v) => v.cbteNro)).toEqual([1, 2, 3]);
    });

    it('answers R for the whole lot when its first voucher is rejected, and numbers must run on inside a lot (10016)', async () => {
      await expect(wsfe.requestCae(auth, [invoice(2), invoice(3)])).resolves.toMatchObject({
        result: 'R',
        vouchers: [{ result: 'R', observations: [{ code: 10016 }] }, { result: 'R', observations: [] }],
      });
      const gap = await wsfe.requestCae(auth, [invoice(1), invoice(3)]);
      expect(gap.result).toBe('P');
      expect(gap.vouchers[1]?.observations.map((o) => o.code)).toEqual([10016]);
    });

    it('refuses a lot of FCE MiPyMEs vouchers (one per request) with an Errors entry, evaluating none', async () => {
      const fce = (n: number) => invoice(n, { cbteTipo: 206 });
      const lot = await wsfe.requestCae(auth, [fce(1), fce(2)]);
      expect(lot).toMatchObject({ result: 'R', errors: [{ code: 10002 }] });
      expect(lot.vouchers.every((v) => v.result === 'R' && v.observations.length === 0)).toBe(true);
      expect(simulator.authorized(CUIT, PTO_VTA, 206)).toEqual([]);
      await expect(wsfe.requestCae(auth, [fce(1)])).resolves.toMatchObject({ result: 'A' });
    });

    it('refuses a lot above the RegXReq that FECompTotXRequest reports', async () => {
      const small = await startAfipSimulator({ maxVouchersPerRequest: 2 });
      try {
        const client = createWsfeClient({ url: small.wsfeUrl, timeoutMs: 5000 });
        const tra = buildLoginTicketRequest({ service: 'wsfe', now: new Date(Date.now() - 60_000), ttlSeconds: 600 });
        const ticket = await createWsaaClient({ url: small.wsaaUrl, timeoutMs: 5000 }).login(signLoginTicketRequest(tra, createTestCertificate({ cuit: CUIT })));
        const smallAuth = { token: ticket.token, sign: ticket.sign, cuit: CUIT };
        await expect(client.maxVouchersPerRequest(smallAuth)).resolves.toBe(2);
        await expect(client.requestCae(smallAuth, [invoice(1), invoice(2), invoice(3)])).resolves.toMatchObject({ result: 'R', errors: [{ code: 10001 }] });
        await expect(client.requestCae(smallAuth, [invoice(1), invoice(2)])).resolves.toMatchObject({ result: 'A' });
      } finally {
        await small.close();
      }
    });
  });

  it('answers null for a voucher AFIP does not have (602)', async () => {
    await expect(wsfe.getInvoice(auth, PTO_VTA, FACTURA_B, 7)).resolves.toBeNull();
  });

  it('lists the points of sale the CUIT used, and none before', async () => {
    await expect(wsfe.salesPoints(auth)).resolves.toEqual([]);
    await requestOne(invoice(1));
    await expect(wsfe.salesPoints(auth)).resolves.toEqual([{ number: PTO_VTA, emissionType: 'CAE', blocked: false, deactivatedOn: undefined }]);
  });

  it('turns a refused or expired token (600) into a retryable WsfeTokenRejectedError, sending nothing to authorise', async () => {
    const forged = { ...auth, token: 'bm90IGEgdG9rZW4=' };
    await expect(wsfe.lastAuthorized(forged, PTO_VTA, FACTURA_B)).rejects.toBeInstanceOf(WsfeTokenRejectedError);
    simulator.expireTickets();
    const error = await requestOne(invoice(1)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WsfeTokenRejectedError);
    expect(error).toMatchObject({ retryable: true, dependency: 'afip-wsfe', details: { operation: 'FECAESolicitar', afipErrors: [{ code: 600 }] } });
    expect(simulator.authorized(CUIT, PTO_VTA, FACTURA_B)).toEqual([]);
  });

  it('fails permanently when the ticket does not represent the CUIT (601)', async () => {
    const error = await wsfe.getInvoice({ ...auth, cuit: 20_111_111_112 }, PTO_VTA, FACTURA_B, 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ code: 'AFIP_WSFE_CUIT_NOT_REPRESENTED', details: { afipErrors: [{ code: 601 }] } });
  });

  it.each([
    ['soap-fault', { status: 500, faultCode: 'Server' }],
    ['http-500', { status: 500 }],
    ['service-unavailable', { status: 503 }],
    ['drop-connection', { reason: 'ECONNRESET' }],
  ] as const)('turns a %s into a DependencyUnavailableError', async (fault, details) => {
    simulator.failNext(1, fault);
    const error = await requestOne(invoice(1)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ dependency: 'afip-wsfe', details: { operation: 'FECAESolicitar', ...details } });
    expect(simulator.requestCount('FECAESolicitar')).toBe(1);
    expect(simulator.authorized(CUIT, PTO_VTA, FACTURA_B)).toEqual([]);
  });

  it('gives up after timeoutMs with a DependencyUnavailableError while AFIP still authorises (reconcile with getInvoice)', async () => {
    const impatient = createWsfeClient({ url: simulator.wsfeUrl, timeoutMs: 200 });
    simulator.setLatency(1000);
    const error = await requestOne(invoice(1), impatient).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ details: { operation: 'FECAESolicitar', reason: 'ERR_CANCELED' } });
    simulator.setLatency(0);
    await expect(wsfe.getInvoice(auth, PTO_VTA, FACTURA_B, 1)).resolves.toMatchObject({ result: 'A', cbteNro: 1 });
  });

  it('commits the authorisation before the delayed answer of delayAfterAuthorize', async () => {
    const impatient = createWsfeClient({ url: simulator.wsfeUrl, timeoutMs: 200 });
    simulator.delayAfterAuthorize(1000);
    await expect(requestOne(invoice(1), impatient)).rejects.toBeInstanceOf(DependencyUnavailableError);
    expect(simulator.authorized(CUIT, PTO_VTA, FACTURA_B)).toHaveLength(1);
  });

  it('turns a refused connection into a DependencyUnavailableError', async () => {
    const stopped = await startAfipSimulator();
    await stopped.close();
    const error = await createWsfeClient({ url: stopped.wsfeUrl, timeoutMs: 1000 }).dummy().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ details: { reason: 'ECONNREFUSED' } });
  });
});
