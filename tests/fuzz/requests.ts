import fc from 'fast-check';

// Requests derived from an OpenAPI 3.0 document: valid-ish values from each operation's JSON
// schemas, then mutations of them, odd headers, odd encodings and odd methods. Small by design:
// only the schema keywords our document uses are read (types, enum, anyOf/oneOf, bounds,
// lengths, pattern, format, nullable); anything else becomes an arbitrary JSON value.

interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  format?: string;
  nullable?: boolean;
}

interface Parameter {
  in: 'path' | 'query' | 'header';
  name: string;
  schema?: JsonSchema;
}

interface OpenApiOperation {
  parameters?: Parameter[];
  security?: Record<string, string[]>[];
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, OpenApiOperation>>;
}

/** One route and method with what it takes. */
export interface Operation {
  method: string;
  /** The path template, `{name}` per parameter. */
  path: string;
  parameters: Parameter[];
  body: JsonSchema | undefined;
  /** The security schemes it takes (`adminBasic`: the operator's HTTP Basic credentials work). */
  security: string[];
}

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload: string | undefined;
}

/** Values the server knows (a real job id, a tenant) for a parameter of an operation, so that valid requests reach the database. */
export type KnownValues = (operation: Operation, parameter: string) => readonly string[];

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export function operationsOf(document: OpenApiDocument): Operation[] {
  return Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({
      method: method.toUpperCase(),
      path,
      parameters: operation.parameters ?? [],
      body: operation.requestBody?.content?.['application/json']?.schema,
      security: (operation.security ?? []).flatMap((requirement) => Object.keys(requirement)),
    })),
  );
}

// ---- values -------------------------------------------------------------------------------

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** Integers with the edges that break storage: int4 and int8 limits, 2^53 (a double stops being exact). */
function integerIn(min = -Number.MAX_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): fc.Arbitrary<number> {
  const edges = [min, max, 0, 1, -1, INT32_MAX, 2 ** 31, 2 ** 32, INT32_MIN - 1, 2 ** 53 - 1].filter((n) => n >= min && n <= max);
  return fc.oneof(
    fc.constantFrom(...edges),
    fc.integer({ min: Math.max(min, INT32_MIN), max: Math.min(max, INT32_MAX) }),
    fc.bigInt(BigInt(min), BigInt(max)).map(Number),
  );
}

const EARLIEST = new Date('1970-01-01T00:00:00Z');
const LATEST = new Date('2100-01-01T00:00:00Z');

function stringOf(schema: JsonSchema): fc.Arbitrary<string> {
  const minLength = schema.minLength ?? 0;
  // Long enough to matter, short enough to keep each case fast; the mutations bring huge strings.
  const maxLength = Math.min(schema.maxLength ?? 40, Math.max(minLength, 40));
  // The pattern first: it is what the server checks (zod's email is stricter than RFC 5322's).
  if (schema.pattern !== undefined) {
    return fc.stringMatching(new RegExp(schema.pattern)).filter((value) => value.length >= minLength && value.length <= (schema.maxLength ?? Infinity));
  }
  switch (schema.format) {
    case 'date-time':
      return fc.date({ min: EARLIEST, max: LATEST, noInvalidDate: true }).map((date) => date.toISOString());
    case 'date':
      return fc.date({ min: EARLIEST, max: LATEST, noInvalidDate: true }).map((date) => date.toISOString().slice(0, 10));
    case 'email':
      return fc.emailAddress();
    case 'uuid':
      return fc.uuid();
    default:
      return fc.string({ minLength, maxLength });
  }
}

/**
 * Values of body properties the document cannot describe (a refinement checks them: a time zone
 * must be an IANA one), by property name; each is offered beside what the schema gives.
 */
type Hints = Readonly<Record<string, readonly unknown[]>>;

/** A value the schema accepts, or close to it (refinements beyond the document's reach are only hinted). */
function valueOf(schema: JsonSchema | undefined, hints: Hints = {}, name?: string): fc.Arbitrary<unknown> {
  if (schema === undefined) return fc.jsonValue({ maxDepth: 2 });
  const hinted = name === undefined ? undefined : hints[name];
  const plain = plainValueOf(schema, hints);
  const value = hinted === undefined ? plain : fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...hinted) }, { weight: 1, arbitrary: plain });
  return schema.nullable === true ? fc.option(value, { nil: null, freq: 10 }) : value;
}

function plainValueOf(schema: JsonSchema, hints: Hints): fc.Arbitrary<unknown> {
  if (schema.enum !== undefined && schema.enum.length > 0) return fc.constantFrom(...schema.enum);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives !== undefined && alternatives.length > 0) return fc.oneof(...alternatives.map((alternative) => valueOf(alternative, hints)));
  switch (schema.type) {
    case 'object': {
      const properties = Object.entries(schema.properties ?? {});
      if (properties.length === 0) return fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 });
      return fc.record(Object.fromEntries(properties.map(([name, property]) => [name, valueOf(property, hints, name)])), { requiredKeys: schema.required ?? [] });
    }
    case 'array':
      return fc.array(valueOf(schema.items, hints), { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 4, Math.max(schema.minItems ?? 0, 4)) });
    case 'string':
      return stringOf(schema);
    case 'integer':
      return integerIn(schema.minimum, schema.maximum);
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e15, max: schema.maximum ?? 1e15, noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

// ---- hostile values ----------------------------------------------------------------------

/** Every UTF-16 code unit, controls and lone surrogates included. */
const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));

/** Strings that have broken servers: NUL, controls, lone surrogates, bidi and BOM, numbers and instants out of range, huge. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '\u0000',
      'a\u0000b',
      '\u0007',
      '\u001b[31m',
      '\u007f',
      '\uD800',
      'x\uDFFFy',
      '\uDBFF\uDBFF',
      '\u202E',
      '\uFEFF',
      '\r\nX-Injected: 1',
      '../../etc/passwd',
      "'; drop table tenants; --",
      '%00',
      'NaN',
      '-0',
      '1e308',
      '9007199254740993',
      '0000-01-01T00:00:00Z',
      '+010000-01-01T00:00:00Z',
      '',
      ' ',
    ),
  },
  // One poison character inside otherwise ordinary text: what slips past a check of the first character.
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.string({ unit: 'grapheme-ascii', maxLength: 8 }), fc.constantFrom('\u0000', '\u0000', '\uD800', '\uDC00', '\u0001', '\u007f'), fc.string({ unit: 'grapheme-ascii', maxLength: 8 }))
      .map(([before, bad, after]) => `${before}${bad}${after}`),
  },
  { weight: 1, arbitrary: fc.string({ unit: anyCodeUnit, minLength: 1, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.integer({ min: 201, max: 12_000 }).map((length) => 'x'.repeat(length)) },
);

/** Numbers at and past every edge a column or a double has. */
const hostileNumber: fc.Arbitrary<number> = fc.constantFrom(
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53) - 2,
  1e308,
  -1e308,
  Number.MIN_VALUE,
  -0,
  0.5,
  -1,
);

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  hostileNumber,
  // JSON.parse keeps "__proto__" as an own key, as a server's parser would see it.
  fc.constantFrom(null, true, false, [], {}, [null], { '': null }, JSON.parse('{"__proto__":{"polluted":true}}') as unknown),
  fc.jsonValue({ maxDepth: 3 }),
);

type Path = readonly (string | number)[];

/** Every place in a JSON value: the root, each key and each element, recursively. */
function pathsIn(value: unknown, at: Path = []): Path[] {
  if (Array.isArray(value)) return [at, ...value.flatMap((item, index) => pathsIn(item, [...at, index]))];
  if (value !== null && typeof value === 'object') return [at, ...Object.entries(value).flatMap(([key, item]) => pathsIn(item, [...at, key]))];
  return [at];
}

function setAt(value: unknown, path: Path, replacement: unknown): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return replacement;
  if (Array.isArray(value)) return value.map((item, index) => (index === head ? setAt(item, rest, replacement) : item));
  if (value !== null && typeof value === 'object') return { ...value, [head]: setAt((value as Record<string, unknown>)[head], rest, replacement) };
  return value;
}

function deleteAt(value: unknown, path: Path): unknown {
  const [head, ...rest] = path;
  if (head === undefined || value === null || typeof value !== 'object') return value;
  if (rest.length > 0) return setAt(value, [head], deleteAt((value as Record<string | number, unknown>)[head], rest));
  if (Array.isArray(value)) return value.filter((_item, index) => index !== head);
  return Object.fromEntries(Object.entries(value).filter(([key]) => key !== head));
}

/** A valid-ish value with one thing wrong: a place replaced by a hostile value, removed, or an unknown field added. */
function mutated(valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.tuple(valid, fc.nat(), fc.constantFrom('replace', 'replace', 'replace', 'delete', 'add'), hostileValue, fc.string({ maxLength: 8 })).map(
    ([value, pick, how, replacement, key]) => {
      const paths = pathsIn(value);
      const path = paths[pick % paths.length] ?? [];
      if (how === 'delete') return deleteAt(value, path);
      if (how === 'add') return setAt(value, [...path, key || 'unknown'], replacement);
      return setAt(value, path, replacement);
    },
  );
}

// ---- encodings ---------------------------------------------------------------------------

/**
 * Percent-encodes every character outside the unreserved set as its UTF-8 bytes; a lone surrogate
 * as the three bytes UTF-8 would give it (%ED%A0%80 for U+D800), which is not valid UTF-8.
 */
function percentEncode(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const next = text.charCodeAt(i + 1);
    if (/[A-Za-z0-9\-._~]/.test(text.charAt(i))) {
      out += text.charAt(i);
    } else if (code >= 0xd800 && code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      out += encodeURIComponent(text.slice(i, i + 2));
      i++;
    } else if (code >= 0xd800 && code <= 0xdfff) {
      out += [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].map((byte) => `%${byte.toString(16).toUpperCase()}`).join('');
    } else {
      out += encodeURIComponent(text.charAt(i));
    }
  }
  return out;
}

/** Raw bytes no encoder produces: NUL (which Postgres text refuses), a lone surrogate, invalid and overlong UTF-8, broken escapes. */
const rawSegment = fc.oneof(
  fc.constantFrom('%00', 'a%00b', 'id%00'),
  fc.constantFrom('%ED%A0%80', '%FF', '%C0%80', '%E2%80%AE', '%2F', '%2e%2e', '%', '%zz', '%u0000', '%0A', '%09'),
);

/** A path or query value the server may accept: one it knows, or one from the schema; percent-encoded. */
function validParameter(schema: JsonSchema | undefined, known: readonly string[]): fc.Arbitrary<string> {
  const valid = valueOf(schema ?? { type: 'string' }).map((value) => (typeof value === 'string' ? value : JSON.stringify(value)));
  const encoded = valid.map(percentEncode);
  return known.length === 0 ? encoded : fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...known).map(percentEncode) }, { weight: 1, arbitrary: encoded });
}

/** A path or query value meant to break something: hostile text percent-encoded, raw bad bytes, or far too long. */
const hostileParameter: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: hostileString.map(percentEncode) },
  { weight: 3, arbitrary: rawSegment },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 3000 }).map((length) => 'i'.repeat(length)) },
);

/** RFC 3339 instants at and past what Postgres and JavaScript agree on: year 0000 (JavaScript's, not Postgres's) first. */
const edgeInstant = fc.oneof(
  fc.constantFrom('0000-01-01T00:00:00Z', '0000-12-31T23:59:59.999Z', '0000-06-15T12:00:00+02:00'),
  fc.constantFrom('-000001-01-01T00:00:00Z', '+010000-01-01T00:00:00Z', '1969-12-31T23:59:59Z', '9999-12-31T23:59:59.999Z', '2026-02-30T00:00:00Z', '2026-01-01T24:00:00Z'),
);

/**
 * A keyset cursor as the backups list hands out (base64url of `{ startedAt, id }` JSON) with one
 * field wrong at a time (an edge instant, or a NUL or other hostile id), both, or bad JSON, or
 * random bytes.
 */
const cursorValue: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 5, arbitrary: fc.record({ startedAt: edgeInstant, id: fc.uuid() }).map((cursor) => Buffer.from(JSON.stringify(cursor))) },
    {
      weight: 4,
      arbitrary: fc
        .record({ startedAt: fc.date({ min: EARLIEST, max: LATEST, noInvalidDate: true }).map((date) => date.toISOString()), id: fc.oneof(hostileString, fc.constantFrom('\u0000', 'a\u0000b', '\u0000\uD800')) })
        .map((cursor) => Buffer.from(JSON.stringify(cursor))),
    },
    { weight: 1, arbitrary: fc.record({ startedAt: fc.oneof(hostileString, hostileNumber), id: hostileValue }).map((cursor) => Buffer.from(JSON.stringify(cursor))) },
    { weight: 1, arbitrary: fc.constantFrom('{"startedAt":', 'null', '[]', '"\u0000"').map((text) => Buffer.from(text)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 48 }).map((bytes) => Buffer.from(bytes)) },
  )
  .map((bytes) => bytes.toString('base64url'));

// ---- requests ----------------------------------------------------------------------------

/** `arbitrary` in one case out of `outOf`, else null. */
const onceIn = <T>(outOf: number, arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: outOf - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });

/** Header values a real HTTP parser lets through: tab, visible ASCII and space, and the bytes 0x80–0xFF as Latin-1. */
const headerText = fc.string({
  unit: fc.oneof(fc.constant('\t'), fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff })).map((code) => (typeof code === 'string' ? code : String.fromCharCode(code))),
  maxLength: 40,
});

interface Credentials {
  /** API keys of every kind the server knows. */
  keys: readonly string[];
  /** Operator HTTP Basic user and password. */
  operator: { user: string; password: string };
}

function authorization({ keys, operator }: Credentials, schemes: readonly string[]): fc.Arbitrary<Record<string, string>> {
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  return fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...keys).map((key) => ({ authorization: `Bearer ${key}` })) },
    { weight: 1, arbitrary: fc.constantFrom(...keys).map((key) => ({ 'x-api-key': key })) },
    { weight: schemes.includes('adminBasic') ? 8 : 1, arbitrary: fc.constant({ authorization: basic(operator.user, operator.password) }) },
    {
      weight: 2,
      arbitrary: fc.oneof(
        fc.constant({}),
        fc.constantFrom('Bearer', 'Bearer ', 'Basic', 'Basic !!!', 'Basic AAAA', 'Digest x', `Basic ${Buffer.from('no-colon').toString('base64')}`).map((value) => ({ authorization: value })),
        headerText.map((text) => ({ authorization: `Bearer ${text}` })),
        headerText.map((text) => ({ authorization: basic(operator.user, text) })),
        headerText.map((text) => ({ 'x-api-key': text })),
      ),
    },
  );
}

const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom(
        'application/json; charset=utf-8',
        'application/json; charset=latin1',
        'application/problem+json',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/octet-stream',
        '',
      ),
      headerText,
    ),
  },
);

const oddHeaders: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    'content-encoding': fc.oneof(fc.constantFrom('identity', ' IDENTITY ', 'gzip', 'br', 'deflate, gzip', 'x-unknown'), headerText),
    'idempotency-key': fc.oneof(fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }), headerText, fc.constant('k'.repeat(300))),
    'x-request-id': headerText,
    accept: fc.constantFrom('application/json', 'text/html', '*/*', 'application/problem+json;q=0'),
  },
  { requiredKeys: [] },
);

/** Bodies: the schema's valid-ish value, a mutation of it, any JSON, or text that is not JSON. */
function payloadOf(schema: JsonSchema | undefined, hints: Hints = {}): fc.Arbitrary<string | undefined> {
  const valid = valueOf(schema, hints);
  return fc.oneof(
    { weight: 8, arbitrary: valid.map((value) => JSON.stringify(value)) },
    { weight: 6, arbitrary: mutated(valid).map((value) => JSON.stringify(value)) },
    { weight: 1, arbitrary: fc.jsonValue().map((value) => JSON.stringify(value)) },
    {
      weight: 2,
      arbitrary: fc.oneof(
        fc.constantFrom('{', '{"a":', '[1,2', 'nul', '', '\u0000', '{"version":1e999}', '{"a":1,"a":2}', '{"__proto__":{"x":1}}', '[]'.repeat(2), `${'['.repeat(5000)}${']'.repeat(5000)}`),
        fc.string({ unit: anyCodeUnit, maxLength: 30 }),
      ),
    },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

/** Requests for one operation: its own method mostly, any other sometimes. */
export function requestsFor(operation: Operation, credentials: Credentials, known: KnownValues, hints: Hints): fc.Arbitrary<FuzzRequest> {
  const parameters = operation.parameters.filter((parameter) => parameter.in !== 'header');
  const valid = (parameter: Parameter) => validParameter(parameter.schema, known(operation, parameter.name));
  // A cursor is opaque to the schema, so its hostile values are built to its known format.
  const hostile = (parameter: Parameter) => (parameter.name === 'cursor' ? cursorValue : hostileParameter);
  // One parameter at a time is hostile, the others valid, so that the hostile one gets past the
  // checks of the others and reaches the code that uses it; now and then none, now and then all.
  // constantFrom, not nat: nat leans towards 0, which would favour the first parameter.
  const oneHostile = () => fc.constantFrom(...parameters.keys()).map((target) => parameters.map((_parameter, index) => index === target));
  const values = fc
    .oneof(
      ...(parameters.length === 0 ? [] : [{ weight: 2 * parameters.length, arbitrary: oneHostile() }]),
      { weight: 1, arbitrary: fc.constant(parameters.map(() => false)) },
      { weight: 1, arbitrary: fc.array(fc.boolean(), { minLength: parameters.length, maxLength: parameters.length }) },
    )
    .chain((hostileAt) =>
      fc.tuple(
        ...parameters.map((parameter, index) => {
          const value = hostileAt[index] === true ? hostile(parameter) : valid(parameter);
          // A query parameter may be left out; a path one cannot.
          return parameter.in === 'query' && hostileAt[index] !== true ? fc.option(value, { freq: 3 }) : value;
        }),
      ),
    );
  const url = fc.tuple(values, onceIn(5, fc.tuple(fc.string({ maxLength: 8 }), hostileString))).map(([given, extra]) => {
    let path = operation.path;
    const pairs: string[] = [];
    parameters.forEach((parameter, index) => {
      const value = given[index];
      if (parameter.in === 'path') path = path.replace(`{${parameter.name}}`, value ?? '');
      else if (typeof value === 'string') pairs.push(`${parameter.name}=${value}`);
    });
    if (extra !== null) pairs.push(`${percentEncode(extra[0] || 'x')}=${percentEncode(extra[1])}`);
    return pairs.length === 0 ? path : `${path}?${pairs.join('&')}`;
  });
  const method = fc.oneof({ weight: 12, arbitrary: fc.constant(operation.method) }, { weight: 1, arbitrary: fc.constantFrom(...HTTP_METHODS) });
  const withBody = operation.body !== undefined;
  return fc
    .record({
      method,
      url,
      auth: authorization(credentials, operation.security),
      // Without a body the content type is sent now and then, with one it is missing now and then.
      contentType: withBody ? fc.option(contentType, { freq: 10 }) : onceIn(4, contentType),
      odd: onceIn(6, oddHeaders),
      payload: withBody ? payloadOf(operation.body, hints) : onceIn(8, payloadOf(undefined)),
    })
    .map(({ method, url, auth, contentType, odd, payload }) => ({
      method,
      url,
      headers: { ...auth, ...(contentType === null ? {} : { 'content-type': contentType }), ...(odd ?? {}) },
      payload: payload ?? undefined,
    }));
}

/** Paths no route serves, in any method, with any of the above around them. */
export function strayRequests(credentials: Credentials): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      method: fc.constantFrom(...HTTP_METHODS),
      segments: fc.array(fc.oneof(fc.constantFrom('v1', 'v2', 'jobs', 'admin', 'queues', 'docs', 'static', '..', '.'), hostileString.map(percentEncode), rawSegment), {
        minLength: 1,
        maxLength: 5,
      }),
      auth: authorization(credentials, []),
      payload: onceIn(2, payloadOf(undefined)),
    })
    .map(({ method, segments, auth, payload }) => ({ method, url: `/${segments.join('/')}`, headers: { ...auth, 'content-type': 'application/json' }, payload: payload ?? undefined }));
}
