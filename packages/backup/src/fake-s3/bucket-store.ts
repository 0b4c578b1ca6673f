import { createHash, randomBytes } from 'node:crypto';
import { S3Failure } from './replies';

/** S3's minimum size of every part but the last (EntityTooSmall otherwise). */
const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_PART_NUMBER = 10_000;

export interface StoredObject {
  body: Buffer;
  lastModified: Date;
  /** Quoted, as S3 sends it: `"<md5>"`, or `"<md5 of part md5s>-<parts>"` after a multipart upload. */
  etag: string;
  contentType: string;
  /** Full-object `x-amz-checksum-*` values from a PutObject; a multipart object has none. */
  checksums: Record<string, string>;
}

interface MultipartUpload {
  bucket: string;
  key: string;
  contentType: string;
  initiated: Date;
  parts: Map<number, { body: Buffer; etag: string }>;
}

export interface OpenUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

interface ListOptions {
  prefix: string;
  /** '' for none; keys with it after the prefix are rolled up into common prefixes. */
  delimiter: string;
  /** Only entries (keys or common prefixes) after this one. */
  after: string | undefined;
  maxKeys: number;
}

interface ListResult {
  contents: Array<{ key: string; object: StoredObject }>;
  commonPrefixes: string[];
  /** The last entry returned when more follow: where the next page starts. */
  resumeAfter: string | undefined;
}

/** Buckets, their committed objects and open multipart uploads; every method answers like S3 or throws its S3Failure. */
export class BucketStore {
  private readonly buckets = new Map<string, Map<string, StoredObject>>();
  private readonly uploads = new Map<string, MultipartUpload>();

  constructor(bucketNames: readonly string[]) {
    for (const name of bucketNames) this.buckets.set(name, new Map());
  }

  objects(bucket: string): Map<string, StoredObject> {
    const objects = this.buckets.get(bucket);
    if (!objects) throw new S3Failure(404, 'NoSuchBucket', 'The specified bucket does not exist');
    return objects;
  }

  get openUploads(): number {
    return this.uploads.size;
  }

  get(bucket: string, key: string): StoredObject {
    const object = this.objects(bucket).get(key);
    if (!object) throw new S3Failure(404, 'NoSuchKey', 'The specified key does not exist.');
    return object;
  }

  put(bucket: string, key: string, body: Buffer, contentType: string, checksums: Record<string, string>): StoredObject {
    const object = { body, lastModified: new Date(), etag: `"${md5(body).toString('hex')}"`, contentType, checksums };
    this.objects(bucket).set(key, object);
    return object;
  }

  delete(bucket: string, key: string): void {
    this.objects(bucket).delete(key);
  }

  list(bucket: string, options: ListOptions): ListResult {
    const { prefix, delimiter, after, maxKeys } = options;
    const objects = this.objects(bucket);
    const result: ListResult = { contents: [], commonPrefixes: [], resumeAfter: undefined };
    let last: string | undefined;
    let count = 0;
    const matching = [...objects].filter(([key]) => key.startsWith(prefix));
    for (const [key, object] of matching.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const cut = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
      // Sorted keys give non-decreasing entries, so a rolled-up prefix is only ever repeated in a run.
      const entry = cut < 0 ? key : key.slice(0, cut + delimiter.length);
      if ((after !== undefined && entry <= after) || entry === last) continue;
      if (count === maxKeys) {
        result.resumeAfter = last;
        break;
      }
      if (cut < 0) result.contents.push({ key, object });
      else result.commonPrefixes.push(entry);
      last = entry;
      count += 1;
    }
    return result;
  }

  createUpload(bucket: string, key: string, contentType: string): string {
    this.objects(bucket);
    const uploadId = randomBytes(24).toString('base64url');
    this.uploads.set(uploadId, { bucket, key, contentType, initiated: new Date(), parts: new Map() });
    return uploadId;
  }

  uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, body: Buffer): string {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
      throw new S3Failure(400, 'InvalidArgument', `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`);
    }
    const etag = `"${md5(body).toString('hex')}"`;
    this.upload(bucket, key, uploadId).parts.set(partNumber, { body, etag });
    return etag;
  }

  completeUpload(bucket: string, key: string, uploadId: string, listed: Array<{ partNumber: number; etag: string }>): StoredObject {
    const upload = this.upload(bucket, key, uploadId);
    if (listed.length === 0) {
      throw new S3Failure(
        400,
        'MalformedXML',
        'The XML you provided was not well-formed or did not validate against our published schema.',
      );
    }
    if (listed.some(({ partNumber }, index) => index > 0 && (listed[index - 1]?.partNumber ?? 0) >= partNumber)) {
      throw new S3Failure(
        400,
        'InvalidPartOrder',
        'The list of parts was not in ascending order. The parts list must be specified in order of the part number.',
      );
    }
    const parts = listed.map(({ partNumber, etag }, index) => {
      const part = upload.parts.get(partNumber);
      if (!part || unquote(part.etag) !== unquote(etag)) {
        throw new S3Failure(
          400,
          'InvalidPart',
          'One or more of the specified parts could not be found. The part may not have been uploaded, ' +
            "or the specified entity tag may not match the part's entity tag.",
        );
      }
      if (index < listed.length - 1 && part.body.length < MIN_PART_BYTES) {
        throw new S3Failure(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size');
      }
      return part;
    });
    this.uploads.delete(uploadId);
    const etag = md5(Buffer.concat(parts.map((part) => md5(part.body)))).toString('hex');
    const object = {
      body: Buffer.concat(parts.map((part) => part.body)),
      lastModified: new Date(),
      etag: `"${etag}-${parts.length}"`,
      contentType: upload.contentType,
      checksums: {},
    };
    this.objects(bucket).set(key, object);
    return object;
  }

  /**
   * Open uploads of `bucket` whose key starts with `prefix`, ordered by key then upload id, after
   * the markers (S3: without an upload-id marker, only keys after the key marker), at most `max`;
   * `more` says whether others follow.
   */
  listUploads(
    bucket: string,
    options: { prefix: string; keyMarker: string; uploadIdMarker: string; max: number },
  ): { uploads: OpenUpload[]; more: boolean } {
    this.objects(bucket);
    const { prefix, keyMarker, uploadIdMarker } = options;
    const after = (u: OpenUpload) =>
      keyMarker === '' || u.key > keyMarker || (u.key === keyMarker && uploadIdMarker !== '' && u.uploadId > uploadIdMarker);
    const matching = [...this.uploads.entries()]
      .filter(([, u]) => u.bucket === bucket && u.key.startsWith(prefix))
      .map(([uploadId, u]) => ({ key: u.key, uploadId, initiated: u.initiated }))
      .filter(after)
      .sort((a, b) => (a.key === b.key ? (a.uploadId < b.uploadId ? -1 : 1) : a.key < b.key ? -1 : 1));
    return { uploads: matching.slice(0, options.max), more: matching.length > options.max };
  }

  abortUpload(bucket: string, key: string, uploadId: string): void {
    this.upload(bucket, key, uploadId);
    this.uploads.delete(uploadId);
  }

  private upload(bucket: string, key: string, uploadId: string): MultipartUpload {
    this.objects(bucket);
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.bucket !== bucket || upload.key !== key) {
      throw new S3Failure(
        404,
        'NoSuchUpload',
        'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
      );
    }
    return upload;
  }
}

function md5(bytes: Buffer): Buffer {
  return createHash('md5').update(bytes).digest();
}

function unquote(etag: string): string {
  return etag.replace(/^"|"$/g, '');
}
