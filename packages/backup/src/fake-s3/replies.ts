/** One HTTP answer of the fake, before it is written to the socket. */
export interface Reply {
  status: number;
  headers?: Record<string, string>;
  /** XML or object bytes; omitted on the wire for HEAD. */
  body?: string | Buffer;
}

/** An S3 error answer, thrown anywhere while serving a request and written as S3's XML `<Error>`. */
export class S3Failure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'S3Failure';
  }
}

export function errorReply(failure: S3Failure, resource: string, requestId: string): Reply {
  return xmlReply(
    failure.status,
    `<Error><Code>${failure.code}</Code><Message>${xmlEscape(failure.message)}</Message>` +
      `<Resource>${xmlEscape(resource)}</Resource><RequestId>${requestId}</RequestId></Error>`,
  );
}

export function xmlReply(status: number, xml: string, headers: Record<string, string> = {}): Reply {
  return {
    status,
    headers: { 'content-type': 'application/xml', ...headers },
    body: `<?xml version="1.0" encoding="UTF-8"?>\n${xml}`,
  };
}

/** `<Tag>escaped text</Tag>` per entry; undefined values are left out. */
export function xmlFields(fields: Record<string, string | number | boolean | undefined>): string {
  return Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([tag, value]) => `<${tag}>${xmlEscape(String(value))}</${tag}>`)
    .join('');
}

const NAMED_ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const ENTITY_OF: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(NAMED_ENTITIES).map(([name, c]) => [c, `&${name};`]));

function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITY_OF[c] ?? c);
}

function xmlUnescape(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (entity: string, name: string) => {
    if (name.startsWith('#')) {
      const code = name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number.parseInt(name.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return NAMED_ENTITIES[name] ?? entity;
  });
}

/**
 * The raw inner XML of every `<tag>` element. Enough for the flat request bodies the fake reads
 * (CompleteMultipartUpload, Delete); not a general XML parser.
 */
export function xmlElements(xml: string, tag: string): string[] {
  const pattern = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g');
  return [...xml.matchAll(pattern)].map((match) => match[1] ?? '');
}

/** The unescaped text of the first `<tag>` element. */
export function xmlText(xml: string, tag: string): string | undefined {
  const inner = xmlElements(xml, tag)[0];
  return inner === undefined ? undefined : xmlUnescape(inner);
}
