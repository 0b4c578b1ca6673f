/**
 * Decoder for S3's `aws-chunked` content encoding, which the AWS SDKs use to stream a body of
 * unknown checksum: `<hex size>[;chunk-signature=<sig>]\r\n<bytes>\r\n` repeated, a zero-size
 * chunk, then trailer lines (`x-amz-checksum-crc32:<base64>`) and an empty line.
 */

export class AwsChunkedError extends Error {
  override readonly name = 'AwsChunkedError';
}

interface AwsChunkedBody {
  payload: Buffer;
  /** Trailer headers, names lower-cased (e.g. `x-amz-checksum-crc32`). */
  trailers: Map<string, string>;
}

const CRLF = '\r\n';
const CHUNK_SIZE = /^[0-9a-f]+$/i;

export function decodeAwsChunked(encoded: Buffer): AwsChunkedBody {
  const chunks: Buffer[] = [];
  let offset = 0;

  const readLine = (): string => {
    const end = encoded.indexOf(CRLF, offset);
    if (end < 0) throw new AwsChunkedError(`unterminated line at byte ${offset}`);
    const line = encoded.toString('latin1', offset, end);
    offset = end + CRLF.length;
    return line;
  };

  for (;;) {
    // Chunk signatures (signed streaming) are accepted but not verified.
    const sizeField = readLine().split(';')[0] ?? '';
    if (!CHUNK_SIZE.test(sizeField)) throw new AwsChunkedError(`bad chunk size ${JSON.stringify(sizeField)}`);
    const size = Number.parseInt(sizeField, 16);
    if (size === 0) break;
    const end = offset + size;
    if (encoded.length < end + CRLF.length || encoded.toString('latin1', end, end + CRLF.length) !== CRLF) {
      throw new AwsChunkedError(`chunk of ${size} bytes at byte ${offset} is truncated or not followed by CRLF`);
    }
    chunks.push(encoded.subarray(offset, end));
    offset = end + CRLF.length;
  }

  const trailers = new Map<string, string>();
  // A body may end right after the last chunk when it declares no trailer.
  while (offset < encoded.length) {
    const line = readLine();
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new AwsChunkedError(`bad trailer line ${JSON.stringify(line)}`);
    trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  if (offset !== encoded.length) throw new AwsChunkedError(`${encoded.length - offset} bytes after the final CRLF`);
  return { payload: Buffer.concat(chunks), trailers };
}
