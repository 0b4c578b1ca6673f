import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { escapeXml, type XmlElement } from '../xml';
import { readSoapRequest, soapFault, soapResponse, toXml, type Reply, type SoapVersion } from './soap';
import { createWsaaService } from './wsaa-service';
import { createWsfeService } from './wsfe-service';

export interface AfipSimulatorOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** How long WSAA's tickets are valid. Default 12 hours, as AFIP's; chaos tests shorten it. */
  ticketTtlMs?: number;
  /** What FECompTotXRequest answers (RegXReq), the CantReg limit of FECAESolicitar. Default 250, as AFIP's. */
  maxVouchersPerRequest?: number;
}

export type AfipSimulatorService = 'wsaa' | 'wsfe';

/**
 * What the next requests to a service get instead of an answer:
 * `http-500` an HTML error page with status 500, `soap-fault` a SOAP Fault (500),
 * `service-unavailable` 503 from the front end, `drop-connection` the socket closed without an
 * answer, `hang` no answer until the client gives up (or the simulator closes).
 */
export type AfipSimulatorFault = 'http-500' | 'soap-fault' | 'service-unavailable' | 'drop-connection' | 'hang';

export interface AuthorizedVoucher {
  cbteNro: number;
  cae: string;
  /** CAEFchVto, YYYYMMDD. */
  caeDueDate: string;
  total: number;
}

export interface AfipSimulator {
  /** Pass as the WSAA client's `url`. */
  readonly wsaaUrl: string;
  /** Pass as the WSFE client's `url`. */
  readonly wsfeUrl: string;
  /** Tickets WSAA issued, for one CUIT or all. */
  loginCount(cuit?: number): number;
  /** Vouchers WSFE authorised for a series, in number order. */
  authorized(cuit: number, ptoVta: number, cbteTipo: number): AuthorizedVoucher[];
  /** Requests received per operation (`loginCms`, `FECAESolicitar`...), faulted ones included; all when omitted. */
  requestCount(operation?: string): number;
  /**
   * The next `count` requests to `service` (default wsfe), or only those calling `operation` when
   * given (`FECAESolicitar`), answer `fault` instead of being served.
   */
  failNext(count: number, fault: AfipSimulatorFault, service?: AfipSimulatorService, operation?: string): void;
  /** An outage of `service` (default wsfe): every request answers `fault` until `setOutage(null)`. */
  setOutage(fault: AfipSimulatorFault | null, service?: AfipSimulatorService): void;
  /** Delays every answer by `ms`; the request takes effect before the wait, as a slow network would have it. */
  setLatency(ms: number): void;
  /**
   * FECAESolicitar commits an authorisation, then waits `ms` before answering: the window in which
   * a worker can die after AFIP authorised but before it recorded the CAE.
   */
  delayAfterAuthorize(ms: number): void;
  /**
   * Vouchers whose ImpTotal equals `total` are rejected (observation 10999) until `null`: a lot
   * holding one comes back partial (P), approved up to it and unevaluated after it.
   */
  setRejectedTotal(total: number | null): void;
  /** Authorises the series' next number outside the fleet (another system of the same CUIT); returns it. */
  issueElsewhere(cuit: number, ptoVta: number, cbteTipo: number, total: number): number;
  /** Makes every issued ticket expire now: WSFE answers 600 to them and WSAA issues new ones. */
  expireTickets(): void;
  /** Forgets tickets, vouchers, counts, faults and delays. */
  reset(): void;
  /** Stops listening and drops every connection, idle keep-alive and hanging ones included. */
  close(): Promise<void>;
}

const WSAA_PATH = '/ws/services/LoginCms';
const WSFE_PATH = '/wsfev1/service.asmx';
const WSFE_NAMESPACE = 'http://ar.gov.afip.dif.FEV1/';
const WSAA_NAMESPACE = 'http://wsaa.view.sua.dvadac.desein.afip.gov';
/** Far above any request jobfleet sends; bounds the memory one request can take. */
const MAX_BODY_BYTES = 1024 * 1024;

/** WSAA and WSFEv1 over real HTTP and SOAP, with their rules, inspection and fault injection. */
export async function startAfipSimulator(options: AfipSimulatorOptions = {}): Promise<AfipSimulator> {
  const { port = 0, host = '127.0.0.1' } = options;
  const now = () => Date.now();
  const requests = new Map<string, number>();
  const faults: Record<AfipSimulatorService, { fault: AfipSimulatorFault; operation: string | undefined }[]> = { wsaa: [], wsfe: [] };
  /** The first queued fault for this operation, taken off the queue. */
  const nextFault = (service: AfipSimulatorService, operation: string): AfipSimulatorFault | undefined => {
    const index = faults[service].findIndex((f) => f.operation === undefined || f.operation === operation);
    return index === -1 ? undefined : faults[service].splice(index, 1)[0]?.fault;
  };
  const outages: Record<AfipSimulatorService, AfipSimulatorFault | null> = { wsaa: null, wsfe: null };
  let latencyMs = 0;
  let afterAuthorizeMs = 0;
  // Aborts the waits of in-flight requests on close.
  const shutdown = new AbortController();
  const wait = (ms: number) => (ms > 0 ? delay(ms, undefined, { signal: shutdown.signal }) : Promise.resolve());

  const wsaa = createWsaaService(now, options.ticketTtlMs);
  const wsfe = createWsfeService({
    wsaa,
    now,
    afterAuthorize: () => wait(afterAuthorizeMs),
    ...(options.maxVouchersPerRequest === undefined ? {} : { maxVouchersPerRequest: options.maxVouchersPerRequest }),
  });

  const server = createServer((request, response) => {
    serve(request, response).catch((error: unknown) => {
      if (shutdown.signal.aborted) return; // closing: the connection is being dropped anyway
      write(response, htmlError(500, `AFIP simulator failed: ${String(error)}`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port: boundPort } = server.address() as AddressInfo;
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const { pathname } = new URL(request.url ?? '/', origin);
    const service: AfipSimulatorService | undefined = pathname === WSAA_PATH ? 'wsaa' : pathname === WSFE_PATH ? 'wsfe' : undefined;
    if (!service || request.method !== 'POST') {
      write(response, htmlError(404, 'Not Found'));
      return;
    }
    const body = await readBody(request);
    const soap = body === undefined ? { error: 'request too large' } : readSoapRequest(body);
    if ('error' in soap) {
      write(response, soapFault('1.1', service === 'wsaa' ? 'soapenv' : 'soap', 'soap:Client', `Bad request: ${soap.error}`));
      return;
    }
    requests.set(soap.operation.name, (requests.get(soap.operation.name) ?? 0) + 1);

    const fault = outages[service] ?? nextFault(service, soap.operation.name);
    if (fault === 'drop-connection') {
      request.socket.destroy();
      return;
    }
    if (fault === 'hang') return; // close() drops the connection
    const reply = fault ? faultReply(fault, service, soap.version) : await answer(service, soap.version, soap.operation);
    await wait(latencyMs);
    write(response, reply);
  }

  async function answer(service: AfipSimulatorService, version: SoapVersion, operation: XmlElement): Promise<Reply> {
    if (service === 'wsaa') {
      if (operation.name !== 'loginCms') return soapFault(version, 'soapenv', 'soapenv:Server', `No such operation '${operation.name}'`);
      const outcome = wsaa.login(operation);
      if ('faultCode' in outcome) {
        const detail = '<ns2:exceptionName xmlns:ns2="http://xml.apache.org/axis/">gov.afip.desein.dvadac.sua.view.wsaa.LoginFault</ns2:exceptionName>';
        return soapFault(version, 'soapenv', `ns1:${outcome.faultCode}`, outcome.message, detail);
      }
      return soapResponse(
        version,
        'soapenv',
        `<loginCmsResponse xmlns="${WSAA_NAMESPACE}"><loginCmsReturn>${escapeXml(outcome.loginCmsReturn)}</loginCmsReturn></loginCmsResponse>`,
      );
    }
    const result = await wsfe.handle(operation);
    if (result === undefined) {
      return soapFault(version, 'soap', 'soap:Client', `Server did not recognize the value of HTTP Header SOAPAction: ${WSFE_NAMESPACE}${operation.name}.`);
    }
    const name = operation.name;
    return soapResponse(version, 'soap', `<${name}Response xmlns="${WSFE_NAMESPACE}"><${name}Result>${toXml(result)}</${name}Result></${name}Response>`);
  }

  return {
    wsaaUrl: `${origin}${WSAA_PATH}`,
    wsfeUrl: `${origin}${WSFE_PATH}`,
    loginCount: (cuit) => wsaa.loginCount(cuit),
    authorized: (cuit, ptoVta, cbteTipo) =>
      wsfe.authorized(cuit, ptoVta, cbteTipo).map(({ cbteNro, cae, caeDueDate, total }) => ({ cbteNro, cae, caeDueDate, total })),
    requestCount: (operation) =>
      operation === undefined ? [...requests.values()].reduce((sum, n) => sum + n, 0) : (requests.get(operation) ?? 0),
    failNext(count, fault, service = 'wsfe', operation) {
      for (let i = 0; i < count; i++) faults[service].push({ fault, operation });
    },
    setOutage(fault, service = 'wsfe') {
      outages[service] = fault;
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    delayAfterAuthorize(ms) {
      afterAuthorizeMs = ms;
    },
    setRejectedTotal: (total) => wsfe.setRejectedTotal(total),
    issueElsewhere: (cuit, ptoVta, cbteTipo, total) => wsfe.issueElsewhere(cuit, ptoVta, cbteTipo, total),
    expireTickets: () => wsaa.expireTickets(),
    reset() {
      wsaa.reset();
      wsfe.reset();
      requests.clear();
      faults.wsaa.length = 0;
      faults.wsfe.length = 0;
      outages.wsaa = null;
      outages.wsfe = null;
      latencyMs = 0;
      afterAuthorizeMs = 0;
    },
    async close() {
      shutdown.abort();
      const closed = new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
      server.closeAllConnections();
      await closed;
    },
  };
}

function faultReply(fault: Exclude<AfipSimulatorFault, 'drop-connection' | 'hang'>, service: AfipSimulatorService, version: SoapVersion): Reply {
  switch (fault) {
    case 'http-500':
      return htmlError(500, 'Internal Server Error');
    case 'service-unavailable':
      return htmlError(503, 'Service Unavailable');
    case 'soap-fault':
      return service === 'wsaa'
        ? soapFault(version, 'soapenv', 'ns1:wsn.unavailable', 'El servicio al que se desea acceder se encuentra momentáneamente fuera de servicio')
        : soapFault(version, 'soap', 'soap:Server', 'Server was unable to process request. ---> Timeout expired.');
    default: {
      const unhandled: never = fault;
      return unhandled;
    }
  }
}

/** The plain error pages a front end (IIS, a load balancer) answers with: no SOAP inside. */
function htmlError(status: number, title: string): Reply {
  return { status, contentType: 'text/html; charset=utf-8', body: `<html><head><title>${escapeXml(title)}</title></head><body><h1>${escapeXml(title)}</h1></body></html>` };
}

/** The whole body, or undefined when it exceeds MAX_BODY_BYTES (read to the end, so the connection stays usable). */
async function readBody(request: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  return size <= MAX_BODY_BYTES ? Buffer.concat(chunks).toString('utf8') : undefined;
}

function write(response: ServerResponse, reply: Reply): void {
  if (response.headersSent || response.destroyed) return;
  response.writeHead(reply.status, { 'content-type': reply.contentType });
  response.end(reply.body);
}
