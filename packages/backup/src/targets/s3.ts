import { PassThrough, Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { DependencyUnavailableError, JobfleetError, PermanentError, RateLimitedError, parseRetryAfter } from '@jobfleet/contracts';
import { BACKUP_SUFFIXES, type BackupTarget, type BackupUpload, type StoredBackup } from '../target';

export interface S3TargetSettings {
  /** e.g. `http://127.0.0.1:9000` for MinIO. Default: AWS's endpoint for `region`. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Key prefix, '' or ending in '/', e.g. `jobfleet/nightly/`. */
  prefix: string;
  /** `<endpoint>/<bucket>/<key>` rather than `<bucket>.<host>`; most self-hosted stores need it. */
  forcePathStyle: boolean;
  /** Set both or neither; neither: the SDK's default credential chain (AWS_* variables, instance role). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Multipart part size; at least 5 MiB, S3's minimum for every part but the last. */
  partSizeBytes: number;
  /** Parts uploaded at once. An upload holds about (queueSize + 1) × partSizeBytes in memory. */
  queueSize: number;
  /**
   * Limit for connecting, for one request until its response starts (a whole part's upload
   * included), and for a silent socket (a stalled download).
   */
  requestTimeoutMs: number;
}

const MIN_PART_BYTES = 5 * 1024 * 1024;
// Each S3 request is retried twice by the SDK; the job's own retries take it from there.
const MAX_ATTEMPTS = 3;
// S3 asking us to slow down: the job waits at least its Retry-After, without spending an attempt.
const THROTTLING_CODES: ReadonlySet<string> = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException']);
// 4xx codes that mean "try again later" rather than "no"; RequestTimeout is S3's 400 for a stalled upload.
const TRANSIENT_CODES: ReadonlySet<string> = new Set([...THROTTLING_CODES, 'RequestTimeout']);

type Outcome = { ok: true } | { ok: false; error: JobfleetError };

/**
 * Backups as objects `<prefix><name>` in an S3-compatible bucket. A dump streams into a multipart
 * upload that only CompleteMultipartUpload makes visible, so a failed run leaves no object.
 */
export function createS3Target(settings: S3TargetSettings): BackupTarget & { close(): void } {
  checkSettings(settings);
  const { bucket, prefix } = settings;
  const timeout = settings.requestTimeoutMs;
  const client = new S3Client({
    region: settings.region,
    endpoint: settings.endpoint,
    forcePathStyle: settings.forcePathStyle,
    credentials:
      settings.accessKeyId !== undefined && settings.secretAccessKey !== undefined
        ? { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey }
        : undefined,
    maxAttempts: MAX_ATTEMPTS,
    // Constructor options of the SDK's NodeHttpHandler. Without throwOnRequestTimeout an exceeded
    // requestTimeout only logs a warning.
    requestHandler: { connectionTimeout: timeout, requestTimeout: timeout, socketTimeout: timeout, throwOnRequestTimeout: true },
  });

  const locationOf = (key: string) => `s3://${bucket}/${key}`;
  const keyAt = (location: string): string => {
    const directory = locationOf(prefix);
    const name = location.startsWith(directory) ? location.slice(directory.length) : '';
    // Only objects directly under this target's prefix: a stored row must not reach elsewhere.
    if (name === '' || name.includes('/')) {
      throw new PermanentError('BACKUP_INVALID_LOCATION', `${location} is not a backup in ${directory}`);
    }
    return `${prefix}${name}`;
  };
  async function call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw s3Error(error, operation, bucket);
    }
  }

  return {
    kind: 's3',
    description: `s3://${bucket}/${prefix}${settings.endpoint === undefined ? '' : ` at ${settings.endpoint}`}`,

    async begin(fileName: string): Promise<BackupUpload> {
      const key = `${prefix}${fileName}`;
      const stream = new PassThrough();
      const upload = new Upload({
        client,
        // The SDK destroys its body when a part fails; reading `stream` through chunksOf leaves it
        // to be failed below with the S3 error, which the writer then sees instead of an AbortError.
        params: { Bucket: bucket, Key: key, Body: Readable.from(chunksOf(stream), { objectMode: false }) },
        partSize: settings.partSizeBytes,
        queueSize: settings.queueSize,
        leavePartsOnError: false,
      });
      // Settles only after the SDK has aborted the multipart upload of a failed run.
      const outcome: Promise<Outcome> = upload.done().then(
        () => ({ ok: true }),
        (error: unknown) => ({ ok: false, error: s3Error(error, 'upload', bucket) }),
      );
      void outcome.then((result) => {
        // A writer blocked on backpressure would otherwise wait forever: nothing reads `stream` now.
        if (!result.ok) stream.destroy(stream.writableFinished ? undefined : result.error);
      });
      let aborting: Promise<void> | undefined;
      return {
        stream,
        location: locationOf(key),
        async commit() {
          const result = await outcome;
          if (!result.ok) throw result.error;
          return locationOf(key);
        },
        abort() {
          aborting ??= (async () => {
            // Ends the SDK's read of the body mid-stream, after which it aborts the multipart upload
            // itself. Upload.abort() is not used: its done() rejects at once while that cleanup, or
            // a CompleteMultipartUpload already sent, still runs, so nothing could be awaited.
            stream.destroy();
            const result = await outcome;
            // The body was complete and so is the object (or commit succeeded): discard it too.
            if (result.ok) await call('DeleteObject', () => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));
          })();
          return aborting;
        },
      };
    },

    async open(location: string): Promise<Readable> {
      const key = keyAt(location);
      const response = await call('GetObject', () => client.send(new GetObjectCommand({ Bucket: bucket, Key: key })));
      if (!(response.Body instanceof Readable)) {
        throw new DependencyUnavailableError('s3', `GetObject ${location} returned no readable body`);
      }
      return response.Body;
    },

    async list(namePrefix: string): Promise<StoredBackup[]> {
      const found: StoredBackup[] = [];
      let token: string | undefined;
      do {
        // Delimiter: keys in deeper "directories" come back rolled up as CommonPrefixes, not listed.
        const input = { Bucket: bucket, Prefix: `${prefix}${namePrefix}`, Delimiter: '/', ContinuationToken: token };
        const page = await call('ListObjectsV2', () => client.send(new ListObjectsV2Command(input)));
        for (const object of page.Contents ?? []) {
          // S3 always sends these; the SDK types them optional.
          if (object.Key === undefined || object.Size === undefined || object.LastModified === undefined) continue;
          const name = object.Key.slice(prefix.length);
          if (name.includes('/') || !BACKUP_SUFFIXES.some((suffix) => name.endsWith(suffix))) continue;
          found.push({ name, location: locationOf(object.Key), bytes: object.Size, modifiedAt: object.LastModified });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      return found;
    },

    async remove(location: string): Promise<void> {
      const key = keyAt(location);
      // S3 answers 204 for a missing key too.
      await call('DeleteObject', () => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));
    },

    async removeAbandoned(namePrefix: string, isLive: (fileName: string) => boolean): Promise<string[]> {
      // Open multipart uploads are what a killed worker's run leaves: invisible, but stored and billed.
      const removed: string[] = [];
      let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
      for (;;) {
        const input = { Bucket: bucket, Prefix: `${prefix}${namePrefix}`, ...markers };
        const page = await call('ListMultipartUploads', () => client.send(new ListMultipartUploadsCommand(input)));
        for (const upload of page.Uploads ?? []) {
          if (upload.Key === undefined || upload.UploadId === undefined) continue;
          const name = upload.Key.slice(prefix.length);
          if (name.includes('/') || isLive(name)) continue;
          const abort = { Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId };
          try {
            await call('AbortMultipartUpload', () => client.send(new AbortMultipartUploadCommand(abort)));
          } catch (error) {
            // Completed or aborted meanwhile: nothing left to discard.
            if (!(error instanceof PermanentError && error.details.code === 'NoSuchUpload')) throw error;
          }
          removed.push(name);
        }
        if (!page.IsTruncated) return removed;
        markers = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
      }
    },

    close() {
      client.destroy();
    },
  };
}

/** The chunks of `stream`; a consumer that stops early (or is destroyed) leaves `stream` as it is. */
async function* chunksOf(stream: Readable): AsyncGenerator<Buffer> {
  // A plain for-await: Readable.from forwards its destroy error with throw(), which would make
  // stream.iterator() destroy `stream` whatever destroyOnReturn says; a for-await only calls return().
  for await (const chunk of stream.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
}

function checkSettings(settings: S3TargetSettings): void {
  const problems: string[] = [];
  if (!(settings.partSizeBytes >= MIN_PART_BYTES)) problems.push(`partSizeBytes must be at least ${MIN_PART_BYTES}`);
  if (!Number.isInteger(settings.queueSize) || settings.queueSize < 1) problems.push('queueSize must be a positive integer');
  if (settings.prefix !== '' && !settings.prefix.endsWith('/')) problems.push("prefix must be '' or end with '/'");
  if ((settings.accessKeyId === undefined) !== (settings.secretAccessKey === undefined)) {
    problems.push('accessKeyId and secretAccessKey: set both or neither');
  }
  if (problems.length > 0) throw new PermanentError('BACKUP_S3_INVALID_SETTINGS', `invalid S3 target settings: ${problems.join('; ')}`);
}

/**
 * S3 said no (a 4xx: credentials, permissions, missing bucket) -> PermanentError; S3 could not
 * answer (no response, timeout, 5xx, throttling) -> DependencyUnavailableError, retried.
 */
function s3Error(error: unknown, operation: string, bucket: string): JobfleetError {
  if (error instanceof JobfleetError) return error;
  // Read structurally: the SDK attaches $metadata to service and network errors alike.
  const { name, code, message, $metadata, $response } = (typeof error === 'object' && error !== null ? error : {}) as {
    name?: string;
    code?: unknown;
    message?: string;
    $metadata?: { httpStatusCode?: number };
    $response?: { headers?: Record<string, string | undefined> };
  };
  const status = $metadata?.httpStatusCode;
  // Service errors carry S3's code as their name; Node's network errors carry theirs as `code`.
  const s3Code = typeof code === 'string' ? code : (name ?? 'Error');
  const details = { code: s3Code, status, operation, bucket };
  const text = message || String(error);
  if (status === 429 || THROTTLING_CODES.has(s3Code)) {
    return new RateLimitedError('s3', parseRetryAfter($response?.headers?.['retry-after']), { cause: error, details });
  }
  if (status !== undefined && status < 500 && status !== 429 && !TRANSIENT_CODES.has(s3Code)) {
    return new PermanentError('BACKUP_S3_REJECTED', `S3 rejected ${operation} on bucket ${bucket}: ${s3Code} (HTTP ${status}): ${text}`, {
      cause: error,
      details,
    });
  }
  const reason = status === undefined ? s3Code : `${s3Code} (HTTP ${status})`;
  return new DependencyUnavailableError('s3', `${operation} on bucket ${bucket} failed: ${reason}: ${text}`, { cause: error, details });
}
