import { randomBytes, randomInt } from 'node:crypto';
import { childElement, childText, escapeXml, parseXml, type XmlElement } from '../xml';
import { readSignedTra } from './cms';

/** A ticket the simulated WSAA issued. */
export interface IssuedTicket {
  token: string;
  sign: string;
  cuit: number;
  service: string;
  expiresAt: number;
}

export type LoginOutcome = { loginCmsReturn: string } | { faultCode: string; message: string };

/** Services the simulated WSAA issues tickets for (the real one knows many more). */
const KNOWN_SERVICES: ReadonlySet<string> = new Set(['wsfe', 'wsfex', 'wsmtxca', 'ws_sr_padron_a5']);
/** WSAA issues wsfe tickets for 12 hours. */
const DEFAULT_TICKET_TTL_MS = 12 * 3600_000;
/** How far in the future a TRA's generationTime may be (clocks are never exactly in sync). */
const GENERATION_TIME_TOLERANCE_MS = 2 * 60_000;

/** WSAA's rules: one valid ticket per (CUIT, service); a second login while it is valid is refused. */
export function createWsaaService(now: () => number, ticketTtlMs = DEFAULT_TICKET_TTL_MS) {
  const byToken = new Map<string, IssuedTicket>();
  const current = new Map<string, IssuedTicket>();
  const logins = new Map<number, number>();

  function login(operation: XmlElement): LoginOutcome {
    const signed = readSignedTra(childText(operation, 'in0') ?? '');
    if ('faultCode' in signed) return signed;
    const request = readTra(signed.tra);
    if (!request) return { faultCode: 'xml.bad', message: 'No se ha podido interpretar el XML contra el SCHEMA' };
    const at = now();
    if (request.generationTime > at + GENERATION_TIME_TOLERANCE_MS) {
      return { faultCode: 'xml.generationTime.invalid', message: 'generationTime posee formato o dato inválido' };
    }
    if (request.expirationTime <= at) return { faultCode: 'xml.expirationTime.expired', message: 'expirationTime expirado' };
    if (!KNOWN_SERVICES.has(request.service)) return { faultCode: 'wsn.notFound', message: 'Servicio informado inexistente' };
    const subject = signed.certificate.subject.getField({ name: 'serialNumber' }) as { value?: unknown } | null;
    const cuit = /^CUIT (\d{11})$/.exec(typeof subject?.value === 'string' ? subject.value : '')?.[1];
    if (cuit === undefined) return { faultCode: 'coe.notAuthorized', message: 'Computador no autorizado a acceder al servicio' };

    const key = `${cuit}:${request.service}`;
    const existing = current.get(key);
    if (existing && existing.expiresAt > at) {
      return { faultCode: 'coe.alreadyAuthenticated', message: 'El CEE ya posee un TA valido para el acceso al WSN solicitado' };
    }
    const ticket: IssuedTicket = {
      token: randomBytes(96).toString('base64'),
      sign: randomBytes(128).toString('base64'),
      cuit: Number(cuit),
      service: request.service,
      expiresAt: at + ticketTtlMs,
    };
    if (existing) byToken.delete(existing.token);
    current.set(key, ticket);
    byToken.set(ticket.token, ticket);
    logins.set(ticket.cuit, (logins.get(ticket.cuit) ?? 0) + 1);
    return { loginCmsReturn: loginTicketResponse(ticket, at, signed.certificate.subject.attributes) };
  }

  return {
    login,
    /** The valid ticket a WSFE Auth block names, if any. */
    ticketFor(token: string, sign: string): IssuedTicket | undefined {
      const ticket = byToken.get(token);
      return ticket && ticket.sign === sign && ticket.expiresAt > now() ? ticket : undefined;
    },
    loginCount(cuit?: number): number {
      return cuit === undefined ? [...logins.values()].reduce((sum, n) => sum + n, 0) : (logins.get(cuit) ?? 0);
    },
    expireTickets(): void {
      for (const ticket of byToken.values()) ticket.expiresAt = now();
    },
    reset(): void {
      byToken.clear();
      current.clear();
      logins.clear();
    },
  };
}

export type WsaaService = ReturnType<typeof createWsaaService>;

function readTra(xml: string): { service: string; generationTime: number; expirationTime: number } | undefined {
  try {
    const root = parseXml(xml);
    const header = childElement(root, 'header');
    const uniqueId = Number(childText(header, 'uniqueId'));
    const generationTime = Date.parse(childText(header, 'generationTime') ?? '');
    const expirationTime = Date.parse(childText(header, 'expirationTime') ?? '');
    const service = childText(root, 'service');
    const valid =
      root.name === 'loginTicketRequest' &&
      Number.isInteger(uniqueId) &&
      uniqueId >= 0 &&
      uniqueId < 2 ** 32 &&
      !Number.isNaN(generationTime) &&
      !Number.isNaN(expirationTime) &&
      service !== undefined &&
      service !== '';
    return valid ? { service, generationTime, expirationTime } : undefined;
  } catch {
    return undefined;
  }
}

/** The loginTicketResponse document; soap escapes it into loginCmsReturn when it is sent. */
function loginTicketResponse(ticket: IssuedTicket, at: number, subject: { shortName?: string; name?: string; value?: unknown }[]): string {
  const destination = subject.map((field) => `${(field.shortName ?? field.name ?? '').toUpperCase()}=${String(field.value)}`).join(', ');
  return (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' +
    '<loginTicketResponse version="1.0"><header>' +
    '<source>CN=wsaa, O=AFIP, C=AR, SERIALNUMBER=CUIT 33693450239</source>' +
    `<destination>${escapeXml(destination)}</destination>` +
    `<uniqueId>${randomInt(2 ** 31)}</uniqueId>` +
    `<generationTime>${argentinaTime(at)}</generationTime>` +
    `<expirationTime>${argentinaTime(ticket.expiresAt)}</expirationTime>` +
    `</header><credentials><token>${ticket.token}</token><sign>${ticket.sign}</sign></credentials></loginTicketResponse>`
  );
}

/** WSAA writes its times in Argentina's offset: `2030-05-01T09:00:00.000-03:00`. */
function argentinaTime(ms: number): string {
  return new Date(ms - 3 * 3600_000).toISOString().replace('Z', '-03:00');
}
