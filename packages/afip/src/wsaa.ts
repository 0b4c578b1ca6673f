import forge from 'node-forge';
import { z } from 'zod';
import { DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';
import { WSAA_DEPENDENCY, WsaaAlreadyAuthenticatedError, describeSoapFailure, toUnavailableError } from './errors';
import { nodeSignedRsaKey } from './rsa';
import { createSoapService } from './soap-call';
import { childElement, childText, escapeXml, parseXml } from './xml';

/** A WSAA access ticket (TA): what every WSFE call carries as Auth. */
export interface AccessTicket {
  token: string;
  sign: string;
  /** From the TA's header: WSAA decides it (12 h for wsfe), whatever the request asked for. */
  expiresAt: Date;
  generatedAt: Date;
}

export interface WsaaCredentials {
  /** The X.509 certificate AFIP issued for the CSR, PEM. */
  certificatePem: string;
  /** Its RSA private key, PEM (unencrypted). */
  privateKeyPem: string;
}

export interface WsaaClientOptions {
  /** LoginCms address: `https://wsaa.afip.gov.ar/ws/services/LoginCms` (production), `https://wsaahomo.afip.gov.ar/ws/services/LoginCms` (homologation), or a simulator's `wsaaUrl`. */
  url: string;
  /** Upper bound for the whole request. */
  timeoutMs: number;
}

export interface WsaaClient {
  /**
   * Sends a signed TRA (see `signLoginTicketRequest`) and returns the ticket.
   * Throws `WsaaAlreadyAuthenticatedError` when a ticket for this certificate and service is still
   * valid, `PermanentError` when WSAA refuses the CMS, TRA or certificate, and
   * `DependencyUnavailableError` for everything that may pass (transport, timeouts, WSAA outages).
   */
  login(cms: string): Promise<AccessTicket>;
}

/** The object identifiers a CMS SignedData over the TRA uses (RFC 5652, RFC 5754). */
export const CMS_OIDS = {
  data: '1.2.840.113549.1.7.1',
  sha256: '2.16.840.1.101.3.4.2.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
} as const;

/**
 * WSAA fault codes (without the `ns1:` prefix) that mean our request or certificate is wrong:
 * retrying the same CMS can never succeed. `cms.*` (unreadable CMS, bad signature, untrusted,
 * expired or revoked certificate), `xml.*` (TRA against the schema, times, source, destination),
 * an unknown service, a certificate not authorised for it.
 */
const PERMANENT_FAULT = /^(cms\.|xml\.|ta\.|wsn\.notFound$|coe\.notAuthorized$)/;

/**
 * The login ticket request (TRA) WSAA expects, unsigned. `generationTime` and `expirationTime`
 * bound the request's validity (WSAA refuses a TRA outside them), not the ticket's.
 * `uniqueId` is the second of `now`: a 32-bit unsigned integer, as the schema requires.
 */
export function buildLoginTicketRequest(options: { service: string; now: Date; ttlSeconds: number }): string {
  const { service, now, ttlSeconds } = options;
  const expiration = new Date(now.getTime() + ttlSeconds * 1000);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<loginTicketRequest version="1.0">',
    '<header>',
    `<uniqueId>${Math.floor(now.getTime() / 1000) % 2 ** 32}</uniqueId>`,
    `<generationTime>${xsdDateTime(now)}</generationTime>`,
    `<expirationTime>${xsdDateTime(expiration)}</expirationTime>`,
    '</header>',
    `<service>${escapeXml(service)}</service>`,
    '</loginTicketRequest>',
  ].join('');
}

/**
 * Signs the TRA as WSAA's `in0` wants it: CMS (PKCS#7) SignedData with the TRA attached, SHA-256,
 * the signer's certificate included, DER, base64.
 */
export function signLoginTicketRequest(xml: string, credentials: WsaaCredentials): string {
  const certificate = forge.pki.certificateFromPem(credentials.certificatePem);
  const signed = forge.pkcs7.createSignedData();
  signed.content = forge.util.createBuffer(xml, 'utf8');
  signed.addCertificate(certificate);
  signed.addSigner({
    key: nodeSignedRsaKey(credentials.privateKeyPem),
    certificate,
    digestAlgorithm: CMS_OIDS.sha256,
    // contentType and messageDigest are what CMS requires once there are signed attributes.
    authenticatedAttributes: [
      { type: CMS_OIDS.contentType, value: CMS_OIDS.data },
      { type: CMS_OIDS.messageDigest },
      { type: CMS_OIDS.signingTime },
    ],
  });
  signed.sign();
  return forge.util.encode64(forge.asn1.toDer(signed.toAsn1()).getBytes());
}

const loginResponseSchema = z.object({ loginCmsReturn: z.string().min(1) });

const ticketSchema = z.object({
  token: z.string().min(1),
  sign: z.string().min(1),
  generatedAt: z.coerce.date(),
  expiresAt: z.coerce.date(),
});

export function createWsaaClient(options: WsaaClientOptions): WsaaClient {
  const service = createSoapService('wsaa.wsdl', options.url, options.timeoutMs);
  return {
    async login(cms) {
      let answer: unknown;
      try {
        answer = await service.call('loginCms', { in0: cms });
      } catch (thrown) {
        throw toWsaaError(thrown);
      }
      const parsed = loginResponseSchema.safeParse(answer);
      if (!parsed.success) throw unexpectedAnswer(parsed.error);
      return parseLoginTicketResponse(parsed.data.loginCmsReturn);
    },
  };
}

/** Reads the loginTicketResponse document WSAA returns (escaped) inside `loginCmsReturn`. */
function parseLoginTicketResponse(xml: string): AccessTicket {
  let ticket;
  try {
    const root = parseXml(xml);
    const header = childElement(root, 'header');
    const credentials = childElement(root, 'credentials');
    ticket = ticketSchema.safeParse({
      token: childText(credentials, 'token'),
      sign: childText(credentials, 'sign'),
      generatedAt: childText(header, 'generationTime'),
      expiresAt: childText(header, 'expirationTime'),
    });
  } catch (error) {
    throw unexpectedAnswer(error);
  }
  if (!ticket.success || Number.isNaN(ticket.data.expiresAt.getTime()) || Number.isNaN(ticket.data.generatedAt.getTime())) {
    throw unexpectedAnswer(ticket.error);
  }
  return ticket.data;
}

function toWsaaError(thrown: unknown): Error {
  const failure = describeSoapFailure(thrown);
  if (failure.kind === 'fault') {
    const { faultCode, message, status } = failure;
    const options = { cause: thrown, details: { operation: 'loginCms', status, faultCode } };
    if (faultCode === 'coe.alreadyAuthenticated') return new WsaaAlreadyAuthenticatedError(message, options);
    if (PERMANENT_FAULT.test(faultCode)) {
      return new PermanentError(`AFIP_WSAA_${faultCode.replace(/\W+/g, '_').toUpperCase()}`, `WSAA refused the login: ${faultCode}: ${message}`, options);
    }
  }
  // Other faults (wsn.unavailable, wsaa.internalError...), HTTP errors, transport: may pass.
  return toUnavailableError(WSAA_DEPENDENCY, 'loginCms', failure, thrown);
}

function unexpectedAnswer(cause: unknown): DependencyUnavailableError {
  // A 200 that is no ticket is a proxy or an outage page, not a verdict on our request.
  return new DependencyUnavailableError(WSAA_DEPENDENCY, 'loginCms answered something that is not a login ticket', {
    cause,
    details: { operation: 'loginCms', reason: 'unexpectedResponse' },
  });
}

/** xsd:dateTime in UTC, without milliseconds: `2030-05-01T12:00:00Z`. */
function xsdDateTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
