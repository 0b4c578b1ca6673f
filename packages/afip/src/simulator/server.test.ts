import { buildLoginTicketRequest, signLoginTicketRequest } from '../wsaa';
import { createTestCertificate } from './certificate';
import { startAfipSimulator, type AfipSimulator } from './server';

const SOAP12 = 'http://www.w3.org/2003/05/soap-envelope';

describe('AFIP simulator (raw HTTP)', () => {
  let simulator: AfipSimulator;

  beforeAll(async () => {
    simulator = await startAfipSimulator();
  });
  afterEach(() => simulator.reset());
  afterAll(() => simulator.close());

  it('answers a SOAP 1.2 FEDummy in a SOAP 1.2 envelope', async () => {
    const response = await fetch(simulator.wsfeUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/soap+xml; charset=utf-8' },
      body: `<soap12:Envelope xmlns:soap12="${SOAP12}"><soap12:Body><FEDummy xmlns="http://ar.gov.afip.dif.FEV1/"/></soap12:Body></soap12:Envelope>`,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/soap+xml');
    const body = await response.text();
    expect(body).toContain(`xmlns:soap="${SOAP12}"`);
    expect(body).toContain('<FEDummyResponse xmlns="http://ar.gov.afip.dif.FEV1/"><FEDummyResult><AppServer>OK</AppServer><DbServer>OK</DbServer><AuthServer>OK</AuthServer></FEDummyResult></FEDummyResponse>');
  });

  it('returns the loginTicketResponse escaped inside loginCmsReturn, as WSAA does', async () => {
    const cms = signLoginTicketRequest(
      buildLoginTicketRequest({ service: 'wsfe', now: new Date(Date.now() - 60_000), ttlSeconds: 600 }),
      createTestCertificate({ cuit: 20_123_456_786 }),
    );
    const response = await fetch(simulator.wsaaUrl, {
      method: 'POST',
      headers: { 'content-type': 'text/xml; charset=utf-8', soapaction: '""' },
      body:
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsaa="http://wsaa.view.sua.dvadac.desein.afip.gov">' +
        `<soapenv:Body><wsaa:loginCms><wsaa:in0>${cms}</wsaa:in0></wsaa:loginCms></soapenv:Body></soapenv:Envelope>`,
    });
    const body = await response.text();
    expect(response.status).toBe(200);
    expect(body).toMatch(/<loginCmsReturn>&lt;\?xml version=&quot;1\.0&quot;[\s\S]*&lt;loginTicketResponse version=&quot;1\.0&quot;&gt;/);
    expect(body).toContain('&lt;destination&gt;CN=jobfleet-test, SERIALNUMBER=CUIT 20123456786&lt;/destination&gt;');
  });

  it('answers a malformed envelope with a SOAP fault and an unknown path with 404', async () => {
    const bad = await fetch(simulator.wsfeUrl, { method: 'POST', body: '<not-soap' });
    expect(bad.status).toBe(500);
    expect(await bad.text()).toContain('<faultcode');
    expect((await fetch(`${simulator.wsfeUrl}x`, { method: 'POST', body: '' })).status).toBe(404);
  });
});
