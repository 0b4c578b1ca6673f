import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';
import { startFakeS3, type FakeS3 } from '../fake-s3';
import { createS3Target, type S3TargetSettings } from './s3';

const MiB = 1024 * 1024;
const BUCKET = 'backups';
const PREFIX = 'jobfleet/nightly/';

describe('S3 backup target against the fake S3', () => {
  let fake: FakeS3;
  const closers: Array<{ close(): void }> = [];

  beforeEach(async () => {
    fake = await startFakeS3({ buckets: [BUCKET], pageSize: 2 });
  });
  afterEach(async () => {
    for (const closer of closers.splice(0)) closer.close();
    await fake.close();
  });

  function target(overrides: Partial<S3TargetSettings> = {}) {
    const created = createS3Target({
      endpoint: fake.url,
      region: fake.region,
      bucket: BUCKET,
      prefix: PREFIX,
      forcePathStyle: true,
      accessKeyId: fake.accessKeyId,
      secretAccessKey: fake.secretAccessKey,
      partSizeBytes: 5 * MiB,
      queueSize: 2,
      requestTimeoutMs: 5000,
      ...overrides,
    });
    closers.push(created);
    return created;
  }

  /** Random bytes handed out by a Readable in 256 KiB chunks, as pg_dump's stdout would. */
  function randomDump(bytes: number): { source: Readable; data: Buffer } {
    const data = randomBytes(bytes);
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes; at += 256 * 1024) chunks.push(data.subarray(at, at + 256 * 1024));
    return { source: Readable.from(chunks), data };
  }

  /** An endless-looking stream of `bytes`, generated lazily so the test holds none of it. */
  function lazyDump(bytes: number): Readable {
    const chunk = Buffer.alloc(256 * 1024, 7);
    return Readable.from(
      (function* () {
        for (let sent = 0; sent < bytes; sent += chunk.length) yield chunk;
      })(),
    );
  }

  const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

  async function readAll(stream: Readable): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async function until(condition: () => boolean): Promise<void> {
    for (let waited = 0; !condition(); waited += 10) {
      if (waited > 5000) throw new Error('condition not reached within 5 s');
      await delay(10);
    }
  }

  it('streams a 12 MiB dump as a 3-part multipart upload, then reads, lists and removes it', async () => {
    const s3 = target();
    const { source, data } = randomDump(12 * MiB);
    const startedAt = new Date();
    const upload = await s3.begin('db.1.dump');
    await pipeline(source, upload.stream);
    const location = await upload.commit();

    expect(location).toBe(`s3://${BUCKET}/${PREFIX}db.1.dump`);
    const stored = fake.objects(BUCKET).get(`${PREFIX}db.1.dump`);
    expect(stored && sha256(stored.body)).toBe(sha256(data));
    expect(fake.requestCounts()).toMatchObject({ CreateMultipartUpload: 1, UploadPart: 3, CompleteMultipartUpload: 1 });
    expect(fake.requestCounts().PutObject).toBeUndefined();
    expect(fake.openUploads()).toBe(0);

    expect(sha256(await readAll(await s3.open(location)))).toBe(sha256(data));
    const listed = await s3.list('db.');
    expect(listed).toEqual([{ name: 'db.1.dump', location, bytes: 12 * MiB, modifiedAt: expect.any(Date) }]);
    expect(listed[0]?.modifiedAt.getTime()).toBeGreaterThanOrEqual(startedAt.getTime() - 1000);

    await s3.remove(location);
    expect(fake.objects(BUCKET).size).toBe(0);
    expect(await s3.list('db.')).toEqual([]);
    await s3.remove(location); // already gone: not an error
  });

  it('uploads a dump smaller than one part with a single PutObject', async () => {
    const s3 = target();
    const { source, data } = randomDump(300 * 1024);
    const upload = await s3.begin('db.2.sql.gz');
    await pipeline(source, upload.stream);
    const location = await upload.commit();

    expect(fake.requestCounts()).toMatchObject({ PutObject: 1 });
    expect(fake.requestCounts().CreateMultipartUpload).toBeUndefined();
    expect(fake.objects(BUCKET).get(`${PREFIX}db.2.sql.gz`)?.body.equals(data)).toBe(true);
    // The fake returns the CRC32 the SDK sent, so this read is checksum-validated by the SDK too.
    expect((await readAll(await s3.open(location))).equals(data)).toBe(true);
  });

  it('abort() mid-stream aborts the multipart upload and leaves no object', async () => {
    const s3 = target();
    const upload = await s3.begin('db.3.dump');
    for (let i = 0; i < 7; i++) upload.stream.write(randomBytes(MiB));
    await until(() => fake.openUploads() === 1 && fake.requestCounts().UploadPart === 1);

    await upload.abort();
    await upload.abort(); // idempotent

    expect(fake.openUploads()).toBe(0);
    expect(fake.requestCounts().AbortMultipartUpload).toBe(1);
    expect(fake.objects(BUCKET).size).toBe(0);
    expect(upload.stream.destroyed).toBe(true);
    await expect(upload.commit()).rejects.toBeInstanceOf(DependencyUnavailableError);
  });

  it('abort() after the body was complete deletes the object the upload produced', async () => {
    const s3 = target();
    const upload = await s3.begin('db.4.dump');
    await pipeline(randomDump(1024).source, upload.stream);
    await upload.commit();
    expect(fake.objects(BUCKET).size).toBe(1);

    await upload.abort();
    expect(fake.objects(BUCKET).size).toBe(0);
  });

  it('a part failing on every attempt fails the writer with DependencyUnavailableError and leaves nothing', async () => {
    const s3 = target({ queueSize: 1 });
    fake.faults.failNext('UploadPart', 500, 'InternalError', 100);
    const upload = await s3.begin('db.5.dump');

    // 40 MiB cannot all be buffered: the writer only gets its answer from the stream being failed.
    const written = pipeline(lazyDump(40 * MiB), upload.stream);
    const error: unknown = await written.then(() => undefined, (reason: unknown) => reason);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect((error as DependencyUnavailableError).details).toMatchObject({ code: 'InternalError', status: 500 });
    await expect(upload.commit()).rejects.toBe(error);
    await upload.abort();

    expect(fake.requestCounts()).toMatchObject({ CreateMultipartUpload: 1, UploadPart: 3, AbortMultipartUpload: 1 });
    expect(fake.requestCounts().CompleteMultipartUpload).toBeUndefined();
    expect(fake.openUploads()).toBe(0);
    expect(fake.objects(BUCKET).size).toBe(0);
  });

  it('a wrong secret or access key is a permanent BACKUP_S3_REJECTED error, not retried', async () => {
    const wrongSecret = target({ secretAccessKey: 'not-the-secret' });
    const upload = await wrongSecret.begin('db.6.dump');
    await pipeline(randomDump(1024).source, upload.stream);
    const rejected = await upload.commit().catch((error: unknown) => error);
    expect(rejected).toBeInstanceOf(PermanentError);
    expect(rejected).toMatchObject({ code: 'BACKUP_S3_REJECTED', details: { code: 'SignatureDoesNotMatch', status: 403 } });
    expect((rejected as Error).message).toContain('SignatureDoesNotMatch');
    expect((rejected as Error).message).toContain(BUCKET);
    expect(fake.requestCounts().PutObject).toBe(1);

    const wrongKey = target({ accessKeyId: 'AKIAUNKNOWN' });
    await expect(wrongKey.list('db.')).rejects.toMatchObject({
      code: 'BACKUP_S3_REJECTED',
      details: { code: 'InvalidAccessKeyId', status: 403 },
    });
    expect(fake.objects(BUCKET).size).toBe(0);
  });

  it('an unknown bucket is a permanent error, for listing and for an upload', async () => {
    const s3 = target({ bucket: 'no-such-bucket' });
    await expect(s3.list('db.')).rejects.toMatchObject({ code: 'BACKUP_S3_REJECTED', details: { code: 'NoSuchBucket', status: 404 } });
    const upload = await s3.begin('db.7.dump');
    await pipeline(randomDump(1024).source, upload.stream);
    await expect(upload.commit()).rejects.toBeInstanceOf(PermanentError);
  });

  it('lists only backups directly under the prefix whose names match, across pages', async () => {
    const seeder = new S3Client({
      endpoint: fake.url,
      region: fake.region,
      forcePathStyle: true,
      credentials: { accessKeyId: fake.accessKeyId, secretAccessKey: fake.secretAccessKey },
    });
    closers.push({ close: () => seeder.destroy() });
    const keys = {
      [`${PREFIX}db.1.dump`]: 1,
      [`${PREFIX}db.2.sql.gz`]: 2,
      [`${PREFIX}db.3.dump`]: 3,
      [`${PREFIX}db.4.dump`]: 4,
      [`${PREFIX}db.5.dump.partial`]: 5,
      [`${PREFIX}db.6.txt`]: 6,
      [`${PREFIX}other.1.dump`]: 7,
      [`${PREFIX}db.x/inner.dump`]: 8,
      [`${PREFIX}db.y/deeper/inner.dump`]: 9,
      [`jobfleet/db.1.dump`]: 10,
      [`db.1.dump`]: 11,
    };
    for (const [key, size] of Object.entries(keys)) {
      await seeder.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.alloc(size) }));
    }

    const listed = await target().list('db.');
    expect(listed.map(({ name, bytes }) => ({ name, bytes }))).toEqual([
      { name: 'db.1.dump', bytes: 1 },
      { name: 'db.2.sql.gz', bytes: 2 },
      { name: 'db.3.dump', bytes: 3 },
      { name: 'db.4.dump', bytes: 4 },
    ]);
    expect(listed[2]?.location).toBe(`s3://${BUCKET}/${PREFIX}db.3.dump`);
    // pageSize 2: 6 keys and 2 rolled-up prefixes match "db." — 4 pages.
    expect(fake.requestCounts().ListObjectsV2).toBe(4);
  });

  it('removeAbandoned aborts the open uploads of dead runs under the prefix, and nothing else', async () => {
    const s3 = target();
    // Uploads that killed workers left open (two of them, so the listing takes two pages), one
    // still being written, one of another definition, and a finished backup.
    const sdk = new S3Client({
      endpoint: fake.url,
      region: fake.region,
      forcePathStyle: true,
      credentials: { accessKeyId: fake.accessKeyId, secretAccessKey: fake.secretAccessKey },
    });
    closers.push({ close: () => sdk.destroy() });
    for (const name of ['nightly.1.dead0001.dump', 'nightly.2.dead0002.dump', 'weekly.1.dead0003.dump']) {
      await sdk.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `${PREFIX}${name}` }));
    }
    const live = await s3.begin('nightly.3.live0001.dump');
    live.stream.write(randomBytes(6 * MiB)); // a first part goes out, the upload is open
    await waitUntil(() => fake.openUploads() === 4);
    const finished = await s3.begin('nightly.0.done0001.dump');
    finished.stream.end(Buffer.from('small'));
    await finished.commit();

    const removed = await s3.removeAbandoned('nightly.', (name) => name.includes('live'));

    expect(removed.sort()).toEqual(['nightly.1.dead0001.dump', 'nightly.2.dead0002.dump']);
    const open = await sdk.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: PREFIX }));
    expect((open.Uploads ?? []).map((u) => u.Key).sort()).toEqual([`${PREFIX}nightly.3.live0001.dump`, `${PREFIX}weekly.1.dead0003.dump`]);
    expect([...fake.objects(BUCKET).keys()]).toEqual([`${PREFIX}nightly.0.done0001.dump`]);
    await live.abort();
  });

  it('an endpoint refusing connections is a retryable DependencyUnavailableError', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));

    const s3 = target({ endpoint: `http://127.0.0.1:${port}` });
    const error: unknown = await s3.list('db.').catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ dependency: 's3', details: { status: undefined } });
    // Not details.code: under jest's VM modules Node's socket errors come from another realm, and the
    // SDK wraps such non-Errors keeping only their text.
    expect((error as Error).message).toContain('ECONNREFUSED');
    await expect(s3.open(`s3://${BUCKET}/${PREFIX}db.1.dump`)).rejects.toBeInstanceOf(DependencyUnavailableError);
  });

  it('a response slower than requestTimeoutMs is a retryable DependencyUnavailableError', async () => {
    const s3 = target({ requestTimeoutMs: 150 });
    fake.faults.setLatency(1000);
    const error: unknown = await s3.list('db.').catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expect(error).toMatchObject({ details: { code: 'ETIMEDOUT' } });
    expect(fake.requestCounts().ListObjectsV2).toBe(3);
  });

  it('throttling (503 SlowDown) is a rate limit (the job waits, no attempt spent), a 4xx refusal is permanent', async () => {
    const s3 = target();
    fake.faults.failNext('ListObjectsV2', 503, 'SlowDown', 3);
    await expect(s3.list('db.')).rejects.toMatchObject({ code: 'RATE_LIMITED', dependency: 's3', retryable: true, details: { code: 'SlowDown', status: 503 } });
    fake.faults.failNext('DeleteObject', 403, 'AccessDenied');
    await expect(s3.remove(`s3://${BUCKET}/${PREFIX}db.1.dump`)).rejects.toMatchObject({
      code: 'BACKUP_S3_REJECTED',
      details: { code: 'AccessDenied', status: 403 },
    });
  });

  it('refuses locations outside its bucket and prefix', async () => {
    const s3 = target();
    const outside = [`s3://other-bucket/${PREFIX}db.1.dump`, `s3://${BUCKET}/elsewhere/db.1.dump`, `s3://${BUCKET}/${PREFIX}a/db.1.dump`];
    for (const location of outside) {
      await expect(s3.open(location)).rejects.toMatchObject({ code: 'BACKUP_INVALID_LOCATION' });
      await expect(s3.remove(location)).rejects.toMatchObject({ code: 'BACKUP_INVALID_LOCATION' });
    }
    expect(fake.requestCounts()).toEqual({});
  });

  it('describes itself by bucket, prefix and endpoint, and refuses unusable settings', () => {
    expect(target().description).toBe(`s3://${BUCKET}/${PREFIX} at ${fake.url}`);
    expect(target({ endpoint: undefined }).description).toBe(`s3://${BUCKET}/${PREFIX}`);
    expect(() => target({ partSizeBytes: MiB })).toThrow(expect.objectContaining({ code: 'BACKUP_S3_INVALID_SETTINGS' }));
    expect(() => target({ prefix: 'no-slash' })).toThrow(PermanentError);
    expect(() => target({ secretAccessKey: undefined })).toThrow(/set both or neither/);
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await delay(20);
  }
}
