import { AwsChunkedError, decodeAwsChunked } from './aws-chunked';

const encode = (text: string) => Buffer.from(text, 'latin1');

describe('decodeAwsChunked', () => {
  it('joins the chunks and reads the trailers, as the AWS SDK sends them', () => {
    const decoded = decodeAwsChunked(encode('6\r\nhello \r\n6\r\nstream\r\n0\r\nx-amz-checksum-crc32:gtnkmQ==\r\n\r\n'));
    expect(decoded.payload.toString()).toBe('hello stream');
    expect([...decoded.trailers]).toEqual([['x-amz-checksum-crc32', 'gtnkmQ==']]);
  });

  it('accepts chunk signatures, binary data containing CRLF and a body without trailers', () => {
    const signature = ';chunk-signature=' + 'ab'.repeat(32);
    const decoded = decodeAwsChunked(encode(`4${signature}\r\na\r\nb\r\n0${signature}\r\n\r\n`));
    expect(decoded.payload.toString('latin1')).toBe('a\r\nb');
    expect(decoded.trailers.size).toBe(0);
    expect(decodeAwsChunked(encode('1\r\nx\r\n0\r\n')).payload.toString()).toBe('x');
  });

  it('reads sizes as hexadecimal', () => {
    const data = 'z'.repeat(0x1a);
    expect(decodeAwsChunked(encode(`1A\r\n${data}\r\n0\r\n\r\n`)).payload.toString()).toBe(data);
  });

  it.each([
    ['a chunk shorter than its size', '6\r\nhello\r\n0\r\n\r\n'],
    ['a missing zero-size chunk', '5\r\nhello\r\n'],
    ['a size that is not hexadecimal', 'x5\r\nhello\r\n0\r\n\r\n'],
    ['a trailer without a colon', '0\r\nx-amz-checksum-crc32\r\n\r\n'],
    ['bytes after the final CRLF', '0\r\n\r\nextra'],
  ])('rejects %s', (_case, body) => {
    expect(() => decodeAwsChunked(encode(body))).toThrow(AwsChunkedError);
  });
});
