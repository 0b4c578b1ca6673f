import { parseXml, childElement, escapeXml, type XmlElement } from '../xml';

export type SoapVersion = '1.1' | '1.2';

/** One HTTP answer of the simulator, before it is written to the socket. */
export interface Reply {
  status: number;
  contentType: string;
  body: string;
}

const ENVELOPE_NS: Readonly<Record<SoapVersion, string>> = {
  '1.1': 'http://schemas.xmlsoap.org/soap/envelope/',
  '1.2': 'http://www.w3.org/2003/05/soap-envelope',
};
const CONTENT_TYPE: Readonly<Record<SoapVersion, string>> = {
  '1.1': 'text/xml; charset=utf-8',
  '1.2': 'application/soap+xml; charset=utf-8',
};

/** The operation element (first child of Body) of a SOAP 1.1 or 1.2 request, or why it is not one. */
export function readSoapRequest(body: string): { version: SoapVersion; operation: XmlElement } | { error: string } {
  let envelope: XmlElement;
  try {
    envelope = parseXml(body);
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
  const version: SoapVersion = Object.values(envelope.attributes).includes(ENVELOPE_NS['1.2']) ? '1.2' : '1.1';
  const operation = childElement(envelope, 'Body')?.children[0];
  if (envelope.name !== 'Envelope' || !operation) return { error: 'not a SOAP envelope' };
  return { version, operation };
}

/**
 * A response envelope around `content` (already serialised). The prefixes match the servers being
 * imitated: ASP.NET writes `soap:`, Axis (WSAA) writes `soapenv:`.
 */
export function soapResponse(version: SoapVersion, prefix: 'soap' | 'soapenv', content: string): Reply {
  return {
    status: 200,
    contentType: CONTENT_TYPE[version],
    body:
      `<?xml version="1.0" encoding="utf-8"?><${prefix}:Envelope xmlns:${prefix}="${ENVELOPE_NS[version]}" ` +
      `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">` +
      `<${prefix}:Body>${content}</${prefix}:Body></${prefix}:Envelope>`,
  };
}

/**
 * A SOAP Fault with HTTP 500, as both servers send them. `code` is a QName: `soap:Server`, or
 * Axis's `ns1:coe.alreadyAuthenticated` with ns1 bound to `http://xml.apache.org/axis/`.
 */
export function soapFault(version: SoapVersion, prefix: 'soap' | 'soapenv', code: string, message: string, detail = ''): Reply {
  const fault =
    version === '1.1'
      ? `<${prefix}:Fault><faultcode xmlns:ns1="http://xml.apache.org/axis/">${escapeXml(code)}</faultcode>` +
        `<faultstring>${escapeXml(message)}</faultstring><detail>${detail}</detail></${prefix}:Fault>`
      : `<${prefix}:Fault><${prefix}:Code><${prefix}:Value>${prefix}:Receiver</${prefix}:Value></${prefix}:Code>` +
        `<${prefix}:Reason><${prefix}:Text xml:lang="es">${escapeXml(`${code}: ${message}`)}</${prefix}:Text></${prefix}:Reason>` +
        `<${prefix}:Detail>${detail}</${prefix}:Detail></${prefix}:Fault>`;
  return { ...soapResponse(version, prefix, fault), status: 500 };
}

/** Serialises a plain object as child elements, in key order (the order the WSDL sequence wants). */
export function toXml(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map(toXml).join('');
  if (typeof value !== 'object') {
    const scalar = value as string | number | boolean | bigint; // JSON-like data: no functions or symbols
    return escapeXml(String(scalar));
  }
  return Object.entries(value)
    .filter(([, child]) => child !== undefined)
    .map(([name, child]) =>
      Array.isArray(child) ? child.map((item) => `<${name}>${toXml(item)}</${name}>`).join('') : `<${name}>${toXml(child)}</${name}>`,
    )
    .join('');
}
