import crypto from "node:crypto";
import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { AppError } from "../errors";
import { checkHost } from "../security/outbound";
import { formatBytes, parseSha256, resolveRange, type BlobSource, type BlobStore, type ByteRange, type PutOptions, type StoredBlob } from "./blob-store";

// Blobs in an S3-compatible bucket (AWS, R2, Garage, Swift's S3 gateway), under the same
// content-addressed names as on disk: <prefix>sha256/<aa>/<bb>/<digest>. A blob's name is its
// sha256, known only once every byte has been read, so a write goes to a temporary key while
// it is hashed and is copied to its name when whole; a reader sees a whole blob or none, and a
// crash leaves only a temporary key (under <prefix>tmp/) behind.
//
// What the stores differ in, and how this copes: every part of a multipart upload but the last
// has one fixed size (R2 and Garage refuse uneven parts); request checksums only when the
// service requires them (Swift answers aws-chunked bodies with 501); no object metadata (Swift
// caps values at 256 bytes); single-object deletes (DeleteObjects needs Content-MD5 there).

/** Every part but the last: fixed, and at least S3's 5 MiB minimum. */
export const PART_BYTES = 8 * 1024 * 1024;
/** CopyObject copies at most 5 GiB in one request; larger blobs would need a part-wise copy. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;

export interface S3Settings {
  endpoint: string;
  bucket: string;
  region: string;
  forcePathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
  /** Key prefix inside the bucket, e.g. "gantry/"; empty for the bucket's root. */
  prefix?: string;
}

export interface S3BlobStore extends BlobStore {
  /** A URL that lets whoever holds it download the blob, without the portal, until it expires. */
  presignedUrl(sha256: string, { expiresInS, fileName }: { expiresInS: number; fileName?: string }): Promise<string>;
  /** The bucket answers with these credentials (at start, so a mistake is told at once). */
  check(): Promise<void>;
}

const isMissing = (error: unknown) => error instanceof S3ServiceException && (error.$metadata.httpStatusCode === 404 || error.name === "NotFound" || error.name === "NoSuchKey");

/** The service's own words, shortened, for a message a person can act on. */
function serviceMessage(error: unknown): string {
  if (error instanceof S3ServiceException) return `${error.name} (HTTP ${error.$metadata.httpStatusCode ?? "?"})${error.message && error.message !== "UnknownError" ? `: ${error.message}` : ""}`;
  return (error as Error)?.message ?? String(error);
}

export function createS3BlobStore(settings: S3Settings): S3BlobStore {
  const client = new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  const Bucket = settings.bucket;
  const prefix = settings.prefix ?? "";
  const keyOf = (sha256: string) => `${prefix}sha256/${sha256.slice(0, 2)}/${sha256.slice(2, 4)}/${sha256}`;

  async function head(sha256: string): Promise<{ bytes: number } | null> {
    try {
      const out = await client.send(new HeadObjectCommand({ Bucket, Key: keyOf(parseSha256(sha256)) }));
      return { bytes: out.ContentLength ?? 0 };
    } catch (error) {
      if (isMissing(error)) return null;
      throw new AppError("INTERNAL", `The object store could not be asked about a blob: ${serviceMessage(error)}`, { cause: error });
    }
  }

  async function put(source: BlobSource, { expectedSha256, maxBytes, signal }: PutOptions = {}): Promise<StoredBlob> {
    const expected = expectedSha256 === undefined ? undefined : parseSha256(expectedSha256, "expected sha256");
    signal?.throwIfAborted();
    const hash = crypto.createHash("sha256");
    const tmpKey = `${prefix}tmp/${crypto.randomUUID()}`;
    let bytes = 0;
    let part = Buffer.allocUnsafe(PART_BYTES);
    let filled = 0;
    let uploadId: string | undefined;
    const parts: { ETag: string; PartNumber: number }[] = [];
    const sendPart = async (body: Buffer) => {
      uploadId ??= (await client.send(new CreateMultipartUploadCommand({ Bucket, Key: tmpKey }), { abortSignal: signal })).UploadId;
      const PartNumber = parts.length + 1;
      const out = await client.send(new UploadPartCommand({ Bucket, Key: tmpKey, UploadId: uploadId, PartNumber, Body: body, ContentLength: body.length }), { abortSignal: signal });
      parts.push({ ETag: out.ETag!, PartNumber });
    };
    try {
      for await (const chunk of source as AsyncIterable<Uint8Array>) {
        signal?.throwIfAborted();
        const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        bytes += data.length;
        if (maxBytes !== undefined && bytes > maxBytes) throw new AppError("BAD_REQUEST", `The upload is larger than the ${formatBytes(maxBytes)} allowed; nothing was stored`);
        hash.update(data);
        for (let at = 0; at < data.length; ) {
          const take = Math.min(PART_BYTES - filled, data.length - at);
          data.copy(part, filled, at, at + take);
          filled += take;
          at += take;
          if (filled === PART_BYTES) {
            await sendPart(part);
            part = Buffer.allocUnsafe(PART_BYTES);
            filled = 0;
          }
        }
      }
      signal?.throwIfAborted();
      const sha256 = hash.digest("hex");
      if (expected && sha256 !== expected) {
        throw new AppError("BAD_REQUEST", `The upload's sha256 is ${sha256}, not the ${expected} it was sent with; it was damaged on the way, so nothing was stored — send it again`);
      }
      if (await head(sha256)) {
        // Stored already: the parts sent meanwhile are dropped.
        if (uploadId) await client.send(new AbortMultipartUploadCommand({ Bucket, Key: tmpKey, UploadId: uploadId })).catch(() => {});
        return { sha256, bytes };
      }
      if (!uploadId) {
        // Smaller than a part: one request, straight to its name.
        await client.send(new PutObjectCommand({ Bucket, Key: keyOf(sha256), Body: part.subarray(0, filled), ContentLength: filled }), { abortSignal: signal });
        return { sha256, bytes };
      }
      if (filled > 0) await sendPart(part.subarray(0, filled));
      await client.send(new CompleteMultipartUploadCommand({ Bucket, Key: tmpKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal: signal });
      uploadId = undefined;
      if (bytes > MAX_COPY_BYTES) throw new AppError("BAD_REQUEST", `Blobs over ${formatBytes(MAX_COPY_BYTES)} are not yet stored in object storage; nothing was stored`);
      await client.send(new CopyObjectCommand({ Bucket, Key: keyOf(sha256), CopySource: `${Bucket}/${encodeURI(tmpKey)}` }), { abortSignal: signal });
      await client.send(new DeleteObjectCommand({ Bucket, Key: tmpKey })).catch(() => {});
      return { sha256, bytes };
    } catch (error) {
      if (uploadId) await client.send(new AbortMultipartUploadCommand({ Bucket, Key: tmpKey, UploadId: uploadId })).catch(() => {});
      await client.send(new DeleteObjectCommand({ Bucket, Key: tmpKey })).catch(() => {});
      if (signal?.aborted) throw signal.reason;
      if (error instanceof AppError) throw error;
      throw new AppError("INTERNAL", `The object store refused the upload: ${serviceMessage(error)}`, { cause: error });
    }
  }

  async function get(sha256: string, range?: ByteRange): Promise<Readable> {
    const digest = parseSha256(sha256);
    const found = await head(digest);
    if (!found) throw new AppError("NOT_FOUND", `No blob ${digest} in the store`);
    const resolved = resolveRange(range, found.bytes);
    if (!resolved) return Readable.from([]);
    try {
      const out = await client.send(new GetObjectCommand({ Bucket, Key: keyOf(digest), Range: `bytes=${resolved.start}-${resolved.end}` }));
      return out.Body as Readable;
    } catch (error) {
      if (isMissing(error)) throw new AppError("NOT_FOUND", `No blob ${digest} in the store`);
      throw new AppError("INTERNAL", `The object store could not read a blob: ${serviceMessage(error)}`, { cause: error });
    }
  }

  return {
    put,
    get,
    stat: head,
    has: async (sha256) => (await head(sha256)) !== null,
    async delete(sha256) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket, Key: keyOf(parseSha256(sha256)) }));
      } catch (error) {
        if (!isMissing(error)) throw new AppError("INTERNAL", `The object store could not delete a blob: ${serviceMessage(error)}`, { cause: error });
      }
    },
    async presignedUrl(sha256, { expiresInS, fileName }) {
      const digest = parseSha256(sha256);
      const disposition = fileName ? `attachment; filename="${fileName.replace(/["\\\r\n]/g, "_")}"` : undefined;
      return getSignedUrl(client, new GetObjectCommand({ Bucket, Key: keyOf(digest), ResponseContentDisposition: disposition }), { expiresIn: expiresInS });
    },
    async check() {
      const url = new URL(settings.endpoint);
      await checkHost(url.hostname, "object-storage");
      try {
        await client.send(new HeadBucketCommand({ Bucket }));
      } catch (error) {
        const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
        const why = status === 404 ? `the bucket ${Bucket} does not exist there` : status === 403 ? `the access key is refused for the bucket ${Bucket} (check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY)` : serviceMessage(error);
        throw new AppError("BAD_REQUEST", `Object storage at ${settings.endpoint} cannot be used: ${why}`, { cause: error });
      }
    },
  };
}
