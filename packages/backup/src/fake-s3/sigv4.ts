import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { S3Failure } from './replies';

/** What the fake accepts: one key pair, in one region. */
interface FakeCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

interface ReceivedRequest {
  method: string;
  /** The path exactly as sent (still percent-encoded): S3 signs it without normalising. */
  path: string;
  /** The raw query string, without `?`. */
  query: string;
  headers: IncomingHttpHeaders;
}

// AWS4-HMAC-SHA256 Credential=<key id>/<yyyymmdd>/<region>/s3/aws4_request, SignedHeaders=<a;b>, Signature=<hex>
const AUTHORIZATION = new RegExp(
  String.raw`^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/s3/aws4_request,\s*` +
    String.raw`SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$`,
);

/**
 * Checks an `Authorization: AWS4-HMAC-SHA256` header the way S3 does (header-signed requests only;
 * the payload hash is whatever `x-amz-content-sha256` says, checked against the body elsewhere).
 * Throws the S3Failure S3 would answer with.
 */
export function verifySignature(request: ReceivedRequest, credentials: FakeCredentials): void {
  const authorization = header(request.headers, 'authorization');
  if (authorization === undefined) throw new S3Failure(403, 'AccessDenied', 'Access Denied');
  const match = AUTHORIZATION.exec(authorization);
  const [, accessKeyId, date, region, signedHeaders, signature] = match ?? [];
  if (!accessKeyId || !date || !region || !signedHeaders || !signature) {
    throw new S3Failure(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed.');
  }
  if (accessKeyId !== credentials.accessKeyId) {
    throw new S3Failure(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  }
  if (region !== credentials.region) {
    const message = `The authorization header is malformed; the region '${region}' is wrong; expecting '${credentials.region}'`;
    throw new S3Failure(400, 'AuthorizationHeaderMalformed', message);
  }
  const amzDate = header(request.headers, 'x-amz-date');
  if (amzDate?.slice(0, 8) !== date) {
    throw new S3Failure(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed; its date does not match x-amz-date.');
  }
  const payloadHash = header(request.headers, 'x-amz-content-sha256');
  if (payloadHash === undefined) {
    throw new S3Failure(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  }

  const canonicalHeaders = signedHeaders
    .split(';')
    .map((name) => `${name}:${(header(request.headers, name) ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const canonicalRequest = [request.method, request.path, canonicalQuery(request.query), canonicalHeaders, signedHeaders, payloadHash];
  const canonicalHash = createHash('sha256').update(canonicalRequest.join('\n')).digest('hex');
  const scope = `${date}/${region}/s3/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, canonicalHash].join('\n');
  let key: Buffer = Buffer.from(`AWS4${credentials.secretAccessKey}`);
  for (const part of [date, region, 's3', 'aws4_request']) key = hmac(key, part);
  const expected = hmac(key, stringToSign);
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
    throw new S3Failure(
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
    );
  }
}

/** Query parameters decoded, re-encoded the RFC 3986 way and sorted, as SigV4 signs them. */
function canonicalQuery(query: string): string {
  return query
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const equals = pair.indexOf('=');
      const [name, value] = equals < 0 ? [pair, ''] : [pair.slice(0, equals), pair.slice(equals + 1)];
      return [uriEncode(decodeURIComponent(name)), uriEncode(decodeURIComponent(value))] as const;
    })
    // By name, then value: sorting the joined `name=value` strings would misorder `a` and `a-b`.
    .sort(([a, x], [b, y]) => (a === b ? compare(x, y) : compare(a, b)))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** A header's value as one string (repeated headers joined). */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}
