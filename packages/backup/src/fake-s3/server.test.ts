import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { startFakeS3, type FakeS3 } from './index';

const BUCKET = 'bucket';
const MiB = 1024 * 1024;

describe('fake S3 (real AWS SDK v3 client)', () => {
  let fake: FakeS3;
  let client: S3Client;

  function clientFor(overrides: { secretAccessKey?: string; region?: string } = {}): S3Client {
    return new S3Client({
      endpoint: fake.url,
      region: overrides.region ?? fake.region,
      forcePathStyle: true,
      credentials: { accessKeyId: fake.accessKeyId, secretAccessKey: overrides.secretAccessKey ?? fake.secretAccessKey },
      maxAttempts: 1,
    });
  }

  /** `<S3 error code> <HTTP status>` of a command that must fail. */
  async function failure(sent: Promise<unknown>): Promise<string> {
    const error = (await sent.then(
      () => {
        throw new Error('expected the command to fail');
      },
      (reason: unknown) => reason,
    )) as { name: string; $metadata?: { httpStatusCode?: number } };
    return `${error.name} ${String(error.$metadata?.httpStatusCode)}`;
  }

  beforeEach(async () => {
    fake = await startFakeS3({ buckets: [BUCKET] });
    client = clientFor();
  });
  afterEach(async () => {
    client.destroy();
    await fake.close();
  });

  it('stores a streamed (aws-chunked, trailing CRC32) PutObject byte for byte and serves it back checksum-validated', async () => {
    const parts = [Buffer.from('first chunk, '), Buffer.alloc(100_000, 'x'), Buffer.from('\r\n0\r\nlast')];
    const body = Buffer.concat(parts);
    // A stream body with a known length: the SDK sends it aws-chunked with a trailing checksum.
    const put = { Bucket: BUCKET, Key: 'dir/a file.bin', Body: Readable.from(parts), ContentLength: body.length };
    await client.send(new PutObjectCommand(put));

    expect(fake.objects(BUCKET).get('dir/a file.bin')?.body.equals(body)).toBe(true);
    const read = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'dir/a file.bin' }));
    expect(read.ChecksumCRC32).toBeDefined();
    expect(Buffer.from(await read.Body!.transformToByteArray()).equals(body)).toBe(true);
  });

  it('refuses a body whose checksum does not match with BadDigest, storing nothing', async () => {
    const sent = client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'k', Body: Buffer.from('hello'), ChecksumCRC32: 'AAAAAA==' }));
    expect(await failure(sent)).toBe('BadDigest 400');
    expect(fake.objects(BUCKET).size).toBe(0);
  });

  it('assembles a multipart upload in part-number order, whatever the upload order', async () => {
    const first = Buffer.alloc(5 * MiB, 1);
    const last = Buffer.from('tail');
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'big' }));
    expect(fake.openUploads()).toBe(1);
    const two = await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'big', UploadId, PartNumber: 2, Body: last }));
    const one = await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'big', UploadId, PartNumber: 1, Body: first }));
    const parts = [
      { PartNumber: 1, ETag: one.ETag },
      { PartNumber: 2, ETag: two.ETag },
    ];
    const complete = { Bucket: BUCKET, Key: 'big', UploadId, MultipartUpload: { Parts: parts } };
    const done = await client.send(new CompleteMultipartUploadCommand(complete));

    expect(done.ETag).toMatch(/^"[0-9a-f]{32}-2"$/);
    expect(fake.objects(BUCKET).get('big')?.body.equals(Buffer.concat([first, last]))).toBe(true);
    expect(fake.openUploads()).toBe(0);
  });

  it('enforces S3 multipart rules: EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload', async () => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'k' }));
    const uploadPart = (PartNumber: number, body: string) =>
      client.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'k', UploadId, PartNumber, Body: Buffer.from(body) }));
    const complete = (Parts: Array<{ PartNumber: number; ETag: string | undefined }>) =>
      client.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: 'k', UploadId, MultipartUpload: { Parts } }));
    const one = { PartNumber: 1, ETag: (await uploadPart(1, 'a')).ETag };
    const two = { PartNumber: 2, ETag: (await uploadPart(2, 'b')).ETag };

    expect(await failure(complete([one, two]))).toBe('EntityTooSmall 400');
    expect(await failure(complete([{ PartNumber: 1, ETag: '"0123"' }]))).toBe('InvalidPart 400');
    expect(await failure(complete([{ PartNumber: 3, ETag: one.ETag }]))).toBe('InvalidPart 400');
    expect(await failure(complete([two, one]))).toBe('InvalidPartOrder 400');
    expect(fake.objects(BUCKET).size).toBe(0);

    await client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'k', UploadId }));
    expect(fake.openUploads()).toBe(0);
    expect(await failure(complete([one]))).toBe('NoSuchUpload 404');
    expect(await failure(uploadPart(3, 'c'))).toBe('NoSuchUpload 404');
  });

  it('lists with prefix, delimiter and continuation tokens like S3', async () => {
    const odd = `p/d (&<'"*>)`;
    for (const key of ['p/a/1', 'p/a/2', 'p/b', 'p/c/x/y', odd, 'q/e']) {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from(key) }));
    }
    const list = (ContinuationToken?: string) =>
      client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'p/', Delimiter: '/', MaxKeys: 2, ContinuationToken }));

    const first = await list();
    expect(first.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['p/a/']);
    expect(first.Contents?.map((o) => [o.Key, o.Size])).toEqual([['p/b', 3]]);
    expect(first.Contents?.[0]?.ETag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(first).toMatchObject({ IsTruncated: true, KeyCount: 2 });
    const second = await list(first.NextContinuationToken);
    expect(second.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['p/c/']);
    expect(second.Contents?.map((o) => o.Key)).toEqual([odd]);
    expect(second.IsTruncated).toBe(false);
    expect(second.Contents?.[0]?.LastModified).toBeInstanceOf(Date);

    const all = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    expect(all.Contents?.map((o) => o.Key)).toEqual(['p/a/1', 'p/a/2', 'p/b', 'p/c/x/y', odd, 'q/e']);
  });

  it('lists open multipart uploads by prefix, in key then upload-id order, across pages', async () => {
    const created: Array<{ key: string; uploadId: string }> = [];
    for (const key of ['p/b', 'p/a', 'p/a', 'q/c']) {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
      created.push({ key, uploadId: UploadId ?? '' });
    }
    // A completed upload is no longer open.
    const done = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'p/done' }));
    const part = await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'p/done', UploadId: done.UploadId, PartNumber: 1, Body: Buffer.from('x') }));
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: 'p/done', UploadId: done.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }),
    );
    const expected = created
      .filter((u) => u.key.startsWith('p/'))
      .sort((a, b) => (a.key === b.key ? (a.uploadId < b.uploadId ? -1 : 1) : a.key < b.key ? -1 : 1));

    const first = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'p/', MaxUploads: 2 }));
    expect(first).toMatchObject({ IsTruncated: true, NextKeyMarker: expected[1]?.key, NextUploadIdMarker: expected[1]?.uploadId });
    const second = await client.send(
      new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'p/', MaxUploads: 2, KeyMarker: first.NextKeyMarker, UploadIdMarker: first.NextUploadIdMarker }),
    );
    expect(second.IsTruncated).toBe(false);
    const listed = [...(first.Uploads ?? []), ...(second.Uploads ?? [])];
    expect(listed.map((u) => ({ key: u.Key, uploadId: u.UploadId }))).toEqual(expected);
    expect(listed[0]?.Initiated).toBeInstanceOf(Date);

    await client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'q/c', UploadId: created[3]?.uploadId }));
    expect((await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'q/' }))).Uploads ?? []).toEqual([]);
  });

  it('deletes in bulk with DeleteObjects; HeadObject and GetObject of a missing key are 404s', async () => {
    for (const key of ['a', 'b', 'c']) await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from(key) }));
    const result = await client.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: 'a' }, { Key: 'c' }] } }));
    expect(result.Deleted?.map((d) => d.Key)).toEqual(['a', 'c']);
    expect([...fake.objects(BUCKET).keys()]).toEqual(['b']);
    expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'b' }))).ContentLength).toBe(1);

    expect(await failure(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'a' })))).toBe('NotFound 404');
    expect(await failure(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'a' })))).toBe('NoSuchKey 404');
    expect(await failure(client.send(new GetObjectCommand({ Bucket: 'missing', Key: 'a' })))).toBe('NoSuchBucket 404');
  });

  it('verifies SigV4: a wrong secret, a wrong region and an unsigned request are refused', async () => {
    const wrongSecret = clientFor({ secretAccessKey: 'wrong' });
    const wrongRegion = clientFor({ region: 'eu-west-1' });
    try {
      // A HEAD error has no body to name it: the SDK only sees the status.
      expect(await failure(wrongSecret.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'a' })))).toMatch(/ 403$/);
      expect(await failure(wrongSecret.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'a' })))).toBe('SignatureDoesNotMatch 403');
      expect(await failure(wrongRegion.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'a' })))).toBe('AuthorizationHeaderMalformed 400');
    } finally {
      wrongSecret.destroy();
      wrongRegion.destroy();
    }
    const anonymous = await fetch(`${fake.url}/${BUCKET}/a`);
    expect(anonymous.status).toBe(403);
    expect(await anonymous.text()).toMatch(/<Error><Code>AccessDenied<\/Code><Message>Access Denied<\/Message>/);
  });

  it('answers injected faults for the next N requests of one operation, counting every request', async () => {
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'a', Body: Buffer.from('a') }));
    fake.faults.failNext('GetObject', 503, 'SlowDown', 2);
    const get = () => client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'a' }));

    expect(await failure(get())).toBe('SlowDown 503');
    expect(await failure(get())).toBe('SlowDown 503');
    expect(await (await get()).Body?.transformToString()).toBe('a');
    expect(fake.requestCounts()).toEqual({ PutObject: 1, GetObject: 3 });

    fake.faults.failNext('PutObject', 500, 'InternalError');
    fake.faults.clear();
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'b', Body: Buffer.from('b') }));
    expect(fake.objects(BUCKET).size).toBe(2);
  });
});
