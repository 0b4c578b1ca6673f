import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { crc32 } from 'node:zlib';
import { AwsChunkedError, decodeAwsChunked } from './aws-chunked';
import { S3Failure } from './replies';
import { header } from './sigv4';

interface Payload {
  /** The object bytes, aws-chunked framing removed. */
  bytes: Buffer;
  /** Verified (or, for CRC32C/CRC64NVME, accepted) `x-amz-checksum-*` values, from headers or trailers. */
  checksums: Record<string, string>;
}

/** base64 digest per flexible-checksum header; undefined: no built-in implementation, accepted unverified. */
const CHECKSUMS: Readonly<Record<string, ((bytes: Buffer) => string) | undefined>> = {
  'x-amz-checksum-crc32': (bytes) => {
    const value = Buffer.alloc(4);
    value.writeUInt32BE(crc32(bytes));
    return value.toString('base64');
  },
  'x-amz-checksum-sha1': (bytes) => createHash('sha1').update(bytes).digest('base64'),
  'x-amz-checksum-sha256': (bytes) => createHash('sha256').update(bytes).digest('base64'),
  'x-amz-checksum-crc32c': undefined,
  'x-amz-checksum-crc64nvme': undefined,
};

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/**
 * The payload of a request body as S3 would store it: the signed payload hash checked, aws-chunked
 * decoded and its length checked against `x-amz-decoded-content-length`, Content-MD5 and
 * flexible checksums verified.
 */
export function receivePayload(headers: IncomingHttpHeaders, raw: Buffer): Payload {
  const contentSha256 = header(headers, 'x-amz-content-sha256');
  if (contentSha256 !== undefined && HEX_SHA256.test(contentSha256) && sha256Hex(raw) !== contentSha256) {
    throw new S3Failure(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }

  let bytes = raw;
  let trailers = new Map<string, string>();
  const encodings = (headers['content-encoding'] ?? '').split(',').map((encoding) => encoding.trim());
  if (encodings.includes('aws-chunked') || contentSha256?.startsWith('STREAMING-')) {
    try {
      ({ payload: bytes, trailers } = decodeAwsChunked(raw));
    } catch (error) {
      if (!(error instanceof AwsChunkedError)) throw error;
      throw new S3Failure(400, 'IncompleteBody', `The aws-chunked body could not be decoded: ${error.message}`);
    }
    const declared = header(headers, 'x-amz-decoded-content-length');
    if (declared === undefined) throw new S3Failure(411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.');
    if (Number(declared) !== bytes.length) {
      const message = `x-amz-decoded-content-length is ${declared}, the decoded body has ${bytes.length} bytes.`;
      throw new S3Failure(400, 'IncompleteBody', message);
    }
  }

  const md5 = header(headers, 'content-md5');
  if (md5 !== undefined && createHash('md5').update(bytes).digest('base64') !== md5) {
    throw new S3Failure(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
  }
  const checksums: Record<string, string> = {};
  for (const [name, digest] of Object.entries(CHECKSUMS)) {
    const sent = trailers.get(name) ?? header(headers, name);
    if (sent === undefined) continue;
    if (digest !== undefined && digest(bytes) !== sent) {
      const algorithm = name.slice('x-amz-checksum-'.length).toUpperCase();
      throw new S3Failure(400, 'BadDigest', `The ${algorithm} you specified did not match the calculated checksum.`);
    }
    checksums[name] = sent;
  }
  return { bytes, checksums };
}

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
