import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { BucketStore, type StoredObject } from './bucket-store';
import { receivePayload } from './payload';
import { S3Failure, errorReply, xmlElements, xmlFields, xmlReply, xmlText, type Reply } from './replies';
import { verifySignature } from './sigv4';

export interface FakeS3Options {
  /** Buckets that exist, empty; any other answers NoSuchBucket. */
  buckets: readonly string[];
  /** Default `AKIAFAKES3EXAMPLE`. Requests signed with another key answer InvalidAccessKeyId. */
  accessKeyId?: string;
  /** Default `fake-s3-secret`. Signatures are verified: a wrong secret answers SignatureDoesNotMatch. */
  secretAccessKey?: string;
  /** Default `us-east-1`; requests signed for another region answer AuthorizationHeaderMalformed. */
  region?: string;
  /** Most entries one ListObjectsV2 page returns (S3: 1000); small values exercise pagination. */
  pageSize?: number;
}

export interface FakeS3Faults {
  /**
   * The next `times` (default 1) requests of `operation` (e.g. `UploadPart`) answer `status` with
   * S3 error `code` after authentication, without taking effect.
   */
  failNext(operation: FakeS3Operation, status: number, code: string, times?: number): void;
  /** Delays every response by `ms`; the request takes effect before the wait, as on a slow network. */
  setLatency(ms: number): void;
  /** Forgets pending faults and latency. */
  clear(): void;
}

export interface FakeS3 {
  /** Endpoint for path-style clients: `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: string;
  /** Committed objects of a bucket, copies. Throws for an unknown bucket. */
  objects(bucket: string): Map<string, { body: Buffer; lastModified: Date }>;
  /** Multipart uploads created and neither completed nor aborted. */
  openUploads(): number;
  /** Requests received per operation, refused and faulted ones included (unrecognised ones as `Unsupported`). */
  requestCounts(): Record<string, number>;
  readonly faults: FakeS3Faults;
  /** Stops listening and drops every connection. */
  close(): Promise<void>;
}

export type FakeS3Operation =
  | 'HeadBucket'
  | 'ListObjectsV2'
  | 'DeleteObjects'
  | 'PutObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'CreateMultipartUpload'
  | 'ListMultipartUploads'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload';

interface Route {
  operation: FakeS3Operation | undefined;
  bucket: string;
  /** Undefined for bucket-level requests. */
  key: string | undefined;
  params: URLSearchParams;
}

interface Fault {
  status: number;
  code: string;
  remaining: number;
}

const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const S3_MAX_KEYS = 1000;
const FAKE_OWNER_ID = '75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a';

/**
 * A fake S3 over real HTTP for the real AWS SDK: path-style object, listing and multipart
 * operations, SigV4-verified requests, aws-chunked bodies and checksums, S3's XML errors.
 */
export async function startFakeS3(options: FakeS3Options): Promise<FakeS3> {
  const credentials = {
    accessKeyId: options.accessKeyId ?? 'AKIAFAKES3EXAMPLE',
    secretAccessKey: options.secretAccessKey ?? 'fake-s3-secret',
    region: options.region ?? 'us-east-1',
  };
  const pageSize = options.pageSize ?? S3_MAX_KEYS;
  const store = new BucketStore(options.buckets);
  const counts = new Map<string, number>();
  const faults = new Map<string, Fault[]>();
  let latencyMs = 0;
  // Aborts the latency waits of in-flight requests on close.
  const shutdown = new AbortController();

  const server = createServer((request, response) => {
    serve(request, response).catch((error: unknown) => {
      write(response, errorReply(new S3Failure(500, 'InternalError', `fake S3 failed: ${String(error)}`), '', 'none'), false, 'none');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    const method = request.method ?? 'GET';
    const target = request.url ?? '/';
    const queryStart = target.indexOf('?');
    const path = queryStart < 0 ? target : target.slice(0, queryStart);
    const query = queryStart < 0 ? '' : target.slice(queryStart + 1);
    const raw = await readBody(request);
    let reply: Reply;
    try {
      const route = parseRoute(method, path, query, request.headers);
      const counted = route.operation ?? 'Unsupported';
      counts.set(counted, (counts.get(counted) ?? 0) + 1);
      verifySignature({ method, path, query, headers: request.headers }, credentials);
      if (route.operation === undefined) {
        throw new S3Failure(501, 'NotImplemented', 'A header or query you provided implies functionality that is not implemented.');
      }
      const fault = faults.get(route.operation)?.[0];
      if (fault) {
        fault.remaining -= 1;
        if (fault.remaining <= 0) faults.get(route.operation)?.shift();
        throw new S3Failure(fault.status, fault.code, `Injected fault for ${route.operation}.`);
      }
      reply = perform({ ...route, operation: route.operation }, request.headers, raw);
    } catch (thrown) {
      const error = thrown instanceof URIError ? new S3Failure(400, 'InvalidURI', "Couldn't parse the specified URI.") : thrown;
      if (!(error instanceof S3Failure)) throw error;
      reply = errorReply(error, path, requestId);
    }
    if (latencyMs > 0) {
      try {
        await delay(latencyMs, undefined, { signal: shutdown.signal });
      } catch {
        return; // closing: the connection is being dropped anyway
      }
    }
    write(response, reply, method === 'HEAD', requestId);
  }

  function perform(route: Route & { operation: FakeS3Operation }, headers: IncomingHttpHeaders, raw: Buffer): Reply {
    const { bucket, params } = route;
    const key = route.key ?? '';
    const payload = receivePayload(headers, raw);
    const contentType = headers['content-type'] ?? 'binary/octet-stream';
    switch (route.operation) {
      case 'HeadBucket':
        store.objects(bucket);
        return { status: 200 };
      case 'ListObjectsV2':
        return listObjects(bucket, params);
      case 'DeleteObjects': {
        const xml = payload.bytes.toString('utf8');
        const keys = xmlElements(xml, 'Object').map((object) => xmlText(object, 'Key') ?? '');
        store.objects(bucket);
        for (const k of keys) store.delete(bucket, k);
        const quiet = xmlText(xml, 'Quiet') === 'true';
        const deleted = quiet ? '' : keys.map((k) => `<Deleted>${xmlFields({ Key: k })}</Deleted>`).join('');
        return xmlReply(200, `<DeleteResult xmlns="${S3_XMLNS}">${deleted}</DeleteResult>`);
      }
      case 'PutObject': {
        const object = store.put(bucket, key, payload.bytes, contentType, payload.checksums);
        return { status: 200, headers: { etag: object.etag, ...object.checksums } };
      }
      case 'GetObject':
      case 'HeadObject': {
        const object = store.get(bucket, key);
        const withChecksums = headers['x-amz-checksum-mode'] === 'ENABLED';
        return { status: 200, headers: objectHeaders(object, withChecksums), body: object.body };
      }
      case 'DeleteObject':
        store.delete(bucket, key);
        return { status: 204 };
      case 'CreateMultipartUpload': {
        const uploadId = store.createUpload(bucket, key, contentType);
        const algorithm = headers['x-amz-checksum-algorithm'];
        const fields = xmlFields({ Bucket: bucket, Key: key, UploadId: uploadId });
        return xmlReply(
          200,
          `<InitiateMultipartUploadResult xmlns="${S3_XMLNS}">${fields}</InitiateMultipartUploadResult>`,
          typeof algorithm === 'string' ? { 'x-amz-checksum-algorithm': algorithm, 'x-amz-checksum-type': 'COMPOSITE' } : undefined,
        );
      }
      case 'ListMultipartUploads':
        return listUploads(bucket, params);
      case 'UploadPart': {
        const partNumber = Number(params.get('partNumber'));
        const etag = store.uploadPart(bucket, key, params.get('uploadId') ?? '', partNumber, payload.bytes);
        // Echoing the part checksum makes the SDK list it in CompleteMultipartUpload, as with S3.
        return { status: 200, headers: { etag, ...payload.checksums } };
      }
      case 'CompleteMultipartUpload': {
        const parts = xmlElements(payload.bytes.toString('utf8'), 'Part').map((part) => ({
          partNumber: Number(xmlText(part, 'PartNumber')),
          etag: xmlText(part, 'ETag') ?? '',
        }));
        const object = store.completeUpload(bucket, key, params.get('uploadId') ?? '', parts);
        const location = `${url}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
        const fields = xmlFields({ Location: location, Bucket: bucket, Key: key, ETag: object.etag });
        return xmlReply(200, `<CompleteMultipartUploadResult xmlns="${S3_XMLNS}">${fields}</CompleteMultipartUploadResult>`);
      }
      case 'AbortMultipartUpload':
        store.abortUpload(bucket, key, params.get('uploadId') ?? '');
        return { status: 204 };
      default: {
        const unhandled: never = route.operation;
        throw new Error(`unhandled operation ${String(unhandled)}`);
      }
    }
  }

  function listUploads(bucket: string, params: URLSearchParams): Reply {
    const prefix = params.get('prefix') ?? '';
    const keyMarker = params.get('key-marker') ?? '';
    const uploadIdMarker = params.get('upload-id-marker') ?? '';
    const maxUploads = Math.min(Number(params.get('max-uploads') ?? S3_MAX_KEYS), pageSize);
    if (!Number.isInteger(maxUploads) || maxUploads < 0) {
      throw new S3Failure(400, 'InvalidArgument', 'Provided max-uploads not an integer or within integer range');
    }
    const { uploads, more } = store.listUploads(bucket, { prefix, keyMarker, uploadIdMarker, max: maxUploads });
    const last = uploads.at(-1);
    const owner = xmlFields({ ID: FAKE_OWNER_ID, DisplayName: 'fake-s3' });
    const entries = uploads
      .map(
        (u) =>
          `<Upload>${xmlFields({ Key: u.key, UploadId: u.uploadId })}<Initiator>${owner}</Initiator><Owner>${owner}</Owner>${xmlFields({
            StorageClass: 'STANDARD',
            Initiated: u.initiated.toISOString(),
          })}</Upload>`,
      )
      .join('');
    const fields = xmlFields({
      Bucket: bucket,
      KeyMarker: keyMarker,
      UploadIdMarker: uploadIdMarker,
      NextKeyMarker: more ? last?.key : undefined,
      NextUploadIdMarker: more ? last?.uploadId : undefined,
      Prefix: prefix,
      MaxUploads: maxUploads,
      IsTruncated: more,
    });
    return xmlReply(200, `<ListMultipartUploadsResult xmlns="${S3_XMLNS}">${fields}${entries}</ListMultipartUploadsResult>`);
  }

  function listObjects(bucket: string, params: URLSearchParams): Reply {
    const prefix = params.get('prefix') ?? '';
    const delimiter = params.get('delimiter') ?? '';
    const token = params.get('continuation-token') ?? undefined;
    const maxKeys = Math.min(Number(params.get('max-keys') ?? S3_MAX_KEYS), pageSize);
    if (!Number.isInteger(maxKeys) || maxKeys < 0) {
      throw new S3Failure(400, 'InvalidArgument', 'Provided max-keys not an integer or within integer range');
    }
    let after = params.get('start-after') ?? undefined;
    if (token !== undefined) {
      after = Buffer.from(token, 'base64url').toString('utf8');
      if (token === '' || Buffer.from(after, 'utf8').toString('base64url') !== token) {
        throw new S3Failure(400, 'InvalidArgument', 'The continuation token provided is incorrect');
      }
    }
    const page = store.list(bucket, { prefix, delimiter, after, maxKeys });
    const contents = page.contents
      .map(
        ({ key, object }) =>
          `<Contents>${xmlFields({
            Key: key,
            LastModified: object.lastModified.toISOString(),
            ETag: object.etag,
            Size: object.body.length,
            StorageClass: 'STANDARD',
          })}</Contents>`,
      )
      .join('');
    const commonPrefixes = page.commonPrefixes.map((p) => `<CommonPrefixes>${xmlFields({ Prefix: p })}</CommonPrefixes>`).join('');
    const fields = xmlFields({
      Name: bucket,
      Prefix: prefix,
      Delimiter: delimiter === '' ? undefined : delimiter,
      MaxKeys: maxKeys,
      KeyCount: page.contents.length + page.commonPrefixes.length,
      IsTruncated: page.resumeAfter !== undefined,
      ContinuationToken: token,
      NextContinuationToken: page.resumeAfter === undefined ? undefined : Buffer.from(page.resumeAfter, 'utf8').toString('base64url'),
      StartAfter: params.get('start-after') ?? undefined,
    });
    return xmlReply(200, `<ListBucketResult xmlns="${S3_XMLNS}">${fields}${contents}${commonPrefixes}</ListBucketResult>`);
  }

  return {
    url,
    ...credentials,
    objects(bucket) {
      const copies = new Map<string, { body: Buffer; lastModified: Date }>();
      for (const [key, object] of store.objects(bucket)) {
        copies.set(key, { body: Buffer.from(object.body), lastModified: new Date(object.lastModified) });
      }
      return copies;
    },
    openUploads: () => store.openUploads,
    requestCounts: () => Object.fromEntries(counts),
    faults: {
      failNext(operation, status, code, times = 1) {
        const queue = faults.get(operation) ?? [];
        queue.push({ status, code, remaining: times });
        faults.set(operation, queue);
      },
      setLatency(ms) {
        latencyMs = ms;
      },
      clear() {
        faults.clear();
        latencyMs = 0;
      },
    },
    async close() {
      shutdown.abort();
      const closed = new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** Which S3 operation a path-style request is, from its method, path and query (as S3 routes them). */
function parseRoute(method: string, path: string, query: string, headers: IncomingHttpHeaders): Route {
  const params = new URLSearchParams(query);
  const slash = path.indexOf('/', 1);
  const bucket = decodeURIComponent(path.slice(1, slash < 0 ? undefined : slash));
  const rest = slash < 0 ? '' : path.slice(slash + 1);
  const key = rest === '' ? undefined : decodeURIComponent(rest);
  const route = (operation: FakeS3Operation | undefined): Route => ({ operation, bucket, key, params });
  if (bucket === '') return route(undefined);
  if (key === undefined) {
    if (method === 'HEAD') return route('HeadBucket');
    if (method === 'GET' && params.get('list-type') === '2') return route('ListObjectsV2');
    if (method === 'GET' && params.has('uploads')) return route('ListMultipartUploads');
    if (method === 'POST' && params.has('delete')) return route('DeleteObjects');
    return route(undefined);
  }
  // UploadPartCopy and CopyObject are not implemented.
  const copy = headers['x-amz-copy-source'] !== undefined;
  if (params.has('uploadId')) {
    if (method === 'PUT' && params.has('partNumber') && !copy) return route('UploadPart');
    if (method === 'POST') return route('CompleteMultipartUpload');
    if (method === 'DELETE') return route('AbortMultipartUpload');
    return route(undefined);
  }
  if (method === 'POST' && params.has('uploads')) return route('CreateMultipartUpload');
  // Sub-resources (?acl, ?tagging, ...) are not implemented: better refused than served as the object.
  if ([...params.keys()].some((name) => name !== 'x-id' && name !== 'versionId')) return route(undefined);
  if (method === 'GET') return route('GetObject');
  if (method === 'HEAD') return route('HeadObject');
  if (method === 'PUT' && !copy) return route('PutObject');
  if (method === 'DELETE') return route('DeleteObject');
  return route(undefined);
}

function objectHeaders(object: StoredObject, withChecksums: boolean): Record<string, string> {
  return {
    'content-type': object.contentType,
    'content-length': String(object.body.length),
    etag: object.etag,
    'last-modified': object.lastModified.toUTCString(),
    ...(withChecksums ? object.checksums : {}),
  };
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function write(response: ServerResponse, reply: Reply, head: boolean, requestId: string): void {
  if (response.headersSent || response.destroyed) return;
  const body = head ? undefined : (reply.body ?? '');
  response.writeHead(reply.status, {
    'x-amz-request-id': requestId,
    ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
    ...reply.headers,
  });
  response.end(body);
}
