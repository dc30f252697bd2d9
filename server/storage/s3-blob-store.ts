import crypto from "node:crypto";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { Db } from "../db";
import { AppError } from "../errors";
import { checkHost } from "../security/outbound";
import { createS3Client, isS3Missing, isS3UploadGone, s3ServiceMessage } from "./s3-client";
import { formatBytes, parseSha256, resolveRange, sha256Schema, type BlobSource, type BlobStore, type ByteRange, type Leftover, type ListedBlob, type PresignOptions, type PutOptions, type StoredBlob } from "./blob-store";
import { createUploadRecords, type UploadRecord, type UploadRecords } from "./s3-upload-records";

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
//
// With a database, a put of content whose digest the sender stated records its multipart upload
// in Postgres part by part (s3-upload-records.ts), and the next put of the same content — in
// another process after a crash — goes on from the last whole part: it reads the source again to
// hash it, checks each recorded part against its sha256, and sends only what is missing. The
// database also serialises the sweep's deletes against writers that find their content already
// stored (an advisory lock per name), so a blob is never removed under a row about to name it.

/** Every part but the last: fixed, and at least S3's 5 MiB minimum. */
export const PART_BYTES = 8 * 1024 * 1024;
/** S3's most parts in one multipart upload: with PART_BYTES, the largest blob. */
const MAX_PARTS = 10_000;
/** CopyObject copies at most 5 GiB in one request; a larger blob is copied part by part. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;
/** The parts of a part-wise copy: one fixed size (as uploads' parts), far below S3's 5 GiB per part, 10 000 parts making 10 TiB. */
const COPY_PART_BYTES = 1024 ** 3;

export interface S3Settings {
  endpoint: string;
  bucket: string;
  region: string;
  forcePathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
  /** Key prefix inside the bucket, e.g. "gantry/"; empty for the bucket's root. */
  prefix?: string;
  /** The address downloaders reach the bucket at, when not `endpoint`: presigned links name it. */
  publicEndpoint?: string;
}

export interface S3StoreOptions {
  /** Records multipart uploads (resumable puts) and serialises the sweep with writers; without it puts do not resume. */
  db?: () => Db;
  /** How long a put holds its upload's record without renewing it (a dead holder's record is free after this). */
  leaseMs?: number;
  /**
   * A blob written or kept longer ago than this is copied onto itself when a writer finds it, so
   * its age restarts for the sweep (whose grace window must be well beyond it). Default 10 minutes.
   */
  refreshAfterMs?: number;
  /** The most bytes copied in one CopyObject; beyond it a copy goes part by part. S3's 5 GiB; lower only to test. */
  maxCopyBytes?: number;
  /** Each part of a part-wise copy but the last. 1 GiB; lower only to test (S3's minimum is 5 MiB). */
  copyPartBytes?: number;
}

/** The first key of the advisory locks on blob names in this store. */
const LOCK_SPACE = 7_351_018;

export interface S3BlobStore extends BlobStore {
  /** A URL that lets whoever holds it download the blob, without the portal, until it expires. */
  presignedUrl(sha256: string, options: PresignOptions): Promise<string>;
  /** The bucket answers with these credentials (at start, so a mistake is told at once). */
  check(): Promise<void>;
}


export function createS3BlobStore(settings: S3Settings, { db: openDb, leaseMs = 30_000, refreshAfterMs = 10 * 60_000, maxCopyBytes = MAX_COPY_BYTES, copyPartBytes = COPY_PART_BYTES }: S3StoreOptions = {}): S3BlobStore {
  let opened: Db | undefined;
  const db = openDb && (() => (opened ??= openDb()));
  const client = createS3Client(settings);
  // Signing a link makes no request, so its client may name an address only downloaders use.
  let linkClient: S3Client | undefined;
  const linkSigner = () =>
    settings.publicEndpoint
      ? (linkClient ??= createS3Client({ ...settings, endpoint: settings.publicEndpoint }))
      : client;
  const Bucket = settings.bucket;
  const prefix = settings.prefix ?? "";
  const keyOf = (sha256: string) => `${prefix}sha256/${sha256.slice(0, 2)}/${sha256.slice(2, 4)}/${sha256}`;
  const storeName = `${Bucket}/${prefix}`;
  let records: UploadRecords | undefined;
  const uploads = () => (db ? (records ??= createUploadRecords(db(), { store: storeName, leaseMs })) : undefined);

  /** Runs `work` holding this blob name's advisory lock (with a database; alone without). */
  async function underLock<T>(sha256: string, work: () => Promise<T>): Promise<T> {
    if (!db) return work();
    return db().$transaction(
      async (tx) => {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(${LOCK_SPACE}::int, hashtext(${storeName + sha256}))`;
        return work();
      },
      { timeout: 5 * 60_000, maxWait: 60_000 },
    );
  }

  async function headFull(sha256: string): Promise<{ bytes: number; modifiedAt: Date } | null> {
    try {
      const out = await client.send(new HeadObjectCommand({ Bucket, Key: keyOf(parseSha256(sha256)) }));
      return { bytes: out.ContentLength ?? 0, modifiedAt: out.LastModified ?? new Date(0) };
    } catch (error) {
      if (isS3Missing(error)) return null;
      throw new AppError("INTERNAL", `The object store could not be asked about a blob: ${s3ServiceMessage(error)}`, { cause: error });
    }
  }

  /**
   * Copies an object of `bytes` to `key`, which then holds it whole or not at all: one CopyObject
   * up to its 5 GiB limit, beyond that a multipart upload whose fixed-size parts are copied from
   * ranges of the source. A part-wise copy that fails is aborted, leaving `key` as it was.
   */
  async function copyObject(sourceKey: string, key: string, bytes: number, signal?: AbortSignal): Promise<void> {
    const CopySource = `${Bucket}/${encodeURI(sourceKey)}`;
    if (bytes <= maxCopyBytes) {
      await client.send(new CopyObjectCommand({ Bucket, Key: key, CopySource, MetadataDirective: "REPLACE" }), { abortSignal: signal });
      return;
    }
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: key }), { abortSignal: signal });
    try {
      const Parts: { ETag: string; PartNumber: number }[] = [];
      for (let start = 0, PartNumber = 1; start < bytes; start += copyPartBytes, PartNumber++) {
        const end = Math.min(start + copyPartBytes, bytes) - 1;
        const out = await client.send(new UploadPartCopyCommand({ Bucket, Key: key, UploadId, PartNumber, CopySource, CopySourceRange: `bytes=${start}-${end}` }), { abortSignal: signal });
        Parts.push({ ETag: out.CopyPartResult!.ETag!, PartNumber });
      }
      await client.send(new CompleteMultipartUploadCommand({ Bucket, Key: key, UploadId, MultipartUpload: { Parts } }), { abortSignal: signal });
    } catch (error) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId })).catch(() => {});
      throw error;
    }
  }

  /** Whether the blob is stored; one last written long ago is copied onto itself, which makes it new for the sweep. */
  async function keep(sha256: string): Promise<boolean> {
    const digest = parseSha256(sha256);
    return underLock(digest, async () => {
      const found = await headFull(digest);
      if (!found) return false;
      if (Date.now() - found.modifiedAt.getTime() < refreshAfterMs) return true;
      try {
        await copyObject(keyOf(digest), keyOf(digest), found.bytes);
      } catch (error) {
        if (isS3Missing(error)) return false;
        throw new AppError("INTERNAL", `The object store could not refresh a blob: ${s3ServiceMessage(error)}`, { cause: error });
      }
      return true;
    });
  }

  async function head(sha256: string): Promise<{ bytes: number } | null> {
    const found = await headFull(sha256);
    return found && { bytes: found.bytes };
  }

  /** The recorded upload of this content, if one was cut off and its parts are still there. */
  async function resumable(expected: string, signal?: AbortSignal): Promise<UploadRecord | "busy" | null> {
    const recorded = uploads();
    if (!recorded) return null;
    let claimed = await recorded.claim(expected);
    if (claimed && "heldForMs" in claimed) {
      // A process that died holding it (a restart) lets go when its lease runs out: wait that
      // long once. Held still after that, it is alive and renewing: this put goes its own way.
      await sleep(Math.min(claimed.heldForMs + 250, 5 * 60_000), undefined, { signal }).catch((error) => {
        throw signal?.aborted ? signal.reason : error;
      });
      claimed = await recorded.claim(expected);
      if (claimed && "heldForMs" in claimed) return "busy";
    }
    if (!claimed) return null;
    if (claimed.partBytes !== PART_BYTES) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key: claimed.key, UploadId: claimed.uploadId })).catch(() => {});
      await recorded.drop(claimed.id);
      return null;
    }
    // Only parts the service still has, with the ETag recorded, are skipped.
    const listed = new Map<number, string>();
    try {
      let marker: string | undefined;
      do {
        const out = await client.send(new ListPartsCommand({ Bucket, Key: claimed.key, UploadId: claimed.uploadId, PartNumberMarker: marker }));
        for (const p of out.Parts ?? []) if (p.PartNumber && p.ETag) listed.set(p.PartNumber, p.ETag);
        marker = out.IsTruncated ? out.NextPartNumberMarker : undefined;
      } while (marker);
    } catch (error) {
      if (!isS3UploadGone(error)) throw error;
      await recorded.drop(claimed.id); // aborted meanwhile (a sweep, the bucket's lifecycle rules)
      return null;
    }
    for (const [n, p] of claimed.parts) if (listed.get(n) !== p.etag) claimed.parts.delete(n);
    return claimed;
  }

  async function put(source: BlobSource, { expectedSha256, maxBytes, signal }: PutOptions = {}): Promise<StoredBlob> {
    const expected = expectedSha256 === undefined ? undefined : parseSha256(expectedSha256, "expected sha256");
    signal?.throwIfAborted();
    const recorded = expected ? uploads() : undefined;
    const found = expected ? await resumable(expected, signal) : null;
    // Stated content another process is putting now is put apart from it, unrecorded.
    const resumed = found === "busy" ? null : found;
    const isRecordable = Boolean(recorded) && found !== "busy";
    const hash = crypto.createHash("sha256");
    const tmpKey = resumed?.key ?? `${prefix}tmp/${crypto.randomUUID()}`;
    let bytes = 0;
    let part = Buffer.allocUnsafe(PART_BYTES);
    let filled = 0;
    let uploadId: string | undefined = resumed?.uploadId;
    let recordId: string | undefined = resumed?.id;
    const parts: { ETag: string; PartNumber: number }[] = [];
    let lease: NodeJS.Timeout | undefined;
    const hold = () => {
      if (!recordId || lease) return;
      lease = setInterval(() => void recorded!.renew(recordId!).catch(() => {}), Math.max(250, leaseMs / 3));
      lease.unref();
    };
    hold();
    const sendPart = async (body: Buffer) => {
      const PartNumber = parts.length + 1;
      if (PartNumber > MAX_PARTS) throw new AppError("BAD_REQUEST", `The upload is larger than the ${formatBytes(MAX_PARTS * PART_BYTES)} object storage takes in one blob (${MAX_PARTS} parts of ${formatBytes(PART_BYTES)}); nothing was stored`);
      const partSha = isRecordable ? crypto.createHash("sha256").update(body).digest("hex") : "";
      const done = resumed?.parts.get(PartNumber);
      if (done && done.bytes === body.length && done.sha256 === partSha) {
        parts.push({ ETag: done.etag, PartNumber });
        return;
      }
      if (!uploadId) {
        uploadId = (await client.send(new CreateMultipartUploadCommand({ Bucket, Key: tmpKey }), { abortSignal: signal })).UploadId!;
        if (isRecordable && expected) recordId = (await recorded!.start({ sha256: expected, key: tmpKey, uploadId, partBytes: PART_BYTES })) ?? undefined;
        hold();
      }
      const out = await client.send(new UploadPartCommand({ Bucket, Key: tmpKey, UploadId: uploadId, PartNumber, Body: body, ContentLength: body.length }), { abortSignal: signal });
      parts.push({ ETag: out.ETag!, PartNumber });
      if (recordId) await recorded!.recordPart(recordId, PartNumber, { etag: out.ETag!, sha256: partSha, bytes: body.length });
    };
    const dropUpload = async () => {
      if (uploadId) await client.send(new AbortMultipartUploadCommand({ Bucket, Key: tmpKey, UploadId: uploadId })).catch(() => {});
      uploadId = undefined;
      if (recordId) await recorded!.drop(recordId).catch(() => {});
      recordId = undefined;
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
      if (await keep(sha256)) {
        // Stored already: the parts sent meanwhile are dropped.
        await dropUpload();
        return { sha256, bytes };
      }
      if (!uploadId) {
        // Smaller than a part: one request, straight to its name.
        await client.send(new PutObjectCommand({ Bucket, Key: keyOf(sha256), Body: part.subarray(0, filled), ContentLength: filled }), { abortSignal: signal });
        return { sha256, bytes };
      }
      if (filled > 0) await sendPart(part.subarray(0, filled));
      // A resumed upload may hold parts past this content's end (a source that shrank); they are left out.
      await client.send(new CompleteMultipartUploadCommand({ Bucket, Key: tmpKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal: signal });
      uploadId = undefined;
      if (recordId) await recorded!.drop(recordId);
      recordId = undefined;
      await copyObject(tmpKey, keyOf(sha256), bytes, signal);
      await client.send(new DeleteObjectCommand({ Bucket, Key: tmpKey })).catch(() => {});
      return { sha256, bytes };
    } catch (error) {
      // A recorded upload that failed on the way (the service, the network) is kept for the next
      // put of the same content; content that is wrong, or a put that was stopped, leaves nothing.
      const isKept = recordId !== undefined && !signal?.aborted && !(error instanceof AppError && error.code === "BAD_REQUEST");
      if (isKept) await recorded!.release(recordId!).catch(() => {});
      else {
        await dropUpload();
        await client.send(new DeleteObjectCommand({ Bucket, Key: tmpKey })).catch(() => {});
      }
      if (signal?.aborted) throw signal.reason;
      if (error instanceof AppError) throw error;
      throw new AppError("INTERNAL", `The object store refused the upload: ${s3ServiceMessage(error)}`, { cause: error });
    } finally {
      if (lease) clearInterval(lease);
    }
  }

  /** One GET (no HEAD first): the service clamps a range's end; a start past the end is looked into only when it fails. */
  async function get(sha256: string, range?: ByteRange): Promise<Readable> {
    const digest = parseSha256(sha256);
    // Checks the range's shape (the size is not known yet).
    const { start } = resolveRange(range, Number.MAX_SAFE_INTEGER)!;
    const isRanged = range?.start !== undefined || range?.end !== undefined;
    try {
      const out = await client.send(new GetObjectCommand({ Bucket, Key: keyOf(digest), Range: isRanged ? `bytes=${start}-${range?.end ?? ""}` : undefined }));
      return out.Body as Readable;
    } catch (error) {
      if (isS3Missing(error)) throw new AppError("NOT_FOUND", `No blob ${digest} in the store`);
      if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 416) {
        // Past the end, or any range of an empty blob: said as the folder store says it.
        const found = await head(digest);
        if (!found) throw new AppError("NOT_FOUND", `No blob ${digest} in the store`);
        if (!resolveRange(range, found.bytes)) return Readable.from([]);
      }
      throw new AppError("INTERNAL", `The object store could not read a blob: ${s3ServiceMessage(error)}`, { cause: error });
    }
  }

  async function* list(): AsyncIterable<ListedBlob> {
    let token: string | undefined;
    do {
      const out = await client.send(new ListObjectsV2Command({ Bucket, Prefix: `${prefix}sha256/`, ContinuationToken: token }));
      for (const o of out.Contents ?? []) {
        const name = o.Key!.slice(o.Key!.lastIndexOf("/") + 1);
        if (sha256Schema.safeParse(name).success && o.Key === keyOf(name)) yield { sha256: name, bytes: o.Size ?? 0, modifiedAt: o.LastModified ?? new Date(0) };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  async function* listLeftovers(before: Date): AsyncIterable<Leftover> {
    let token: string | undefined;
    do {
      const out = await client.send(new ListObjectsV2Command({ Bucket, Prefix: `${prefix}tmp/`, ContinuationToken: token }));
      for (const o of out.Contents ?? []) {
        if ((o.LastModified ?? new Date(0)) < before) yield { name: o.Key!, what: "temporary object", bytes: o.Size ?? 0, modifiedAt: o.LastModified ?? new Date(0) };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    // Recorded uploads are idle by their record (written part by part); the others by their last part.
    const recorded = uploads();
    const known = recorded ? await recorded.uploadIds() : new Set<string>();
    for (const r of recorded ? await recorded.listIdle(before) : []) {
      yield { name: `${r.key} (upload ${r.uploadId})`, what: "unfinished upload", bytes: r.bytes, modifiedAt: r.updatedAt, upload: { uploadId: r.uploadId, key: r.key, recordId: r.id } };
    }
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const out = await client.send(new ListMultipartUploadsCommand({ Bucket, Prefix: `${prefix}tmp/`, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      for (const u of out.Uploads ?? []) {
        if (!u.Key || !u.UploadId || known.has(u.UploadId) || (u.Initiated ?? new Date(0)) >= before) continue;
        let last = u.Initiated ?? new Date(0);
        let bytes = 0;
        try {
          let marker: string | undefined;
          do {
            const parts = await client.send(new ListPartsCommand({ Bucket, Key: u.Key, UploadId: u.UploadId, PartNumberMarker: marker }));
            for (const p of parts.Parts ?? []) {
              bytes += p.Size ?? 0;
              if (p.LastModified && p.LastModified > last) last = p.LastModified;
            }
            marker = parts.IsTruncated ? parts.NextPartNumberMarker : undefined;
          } while (marker);
        } catch (error) {
          if (isS3UploadGone(error)) continue;
          throw error;
        }
        if (last < before) yield { name: `${u.Key} (upload ${u.UploadId})`, what: "unfinished upload", bytes, modifiedAt: last, upload: { uploadId: u.UploadId, key: u.Key } };
      }
      keyMarker = out.IsTruncated ? out.NextKeyMarker : undefined;
      uploadIdMarker = out.IsTruncated ? out.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  async function removeLeftover(leftover: Leftover): Promise<void> {
    try {
      if (leftover.upload) {
        await client.send(new AbortMultipartUploadCommand({ Bucket, Key: leftover.upload.key, UploadId: leftover.upload.uploadId })).catch((error) => {
          if (!isS3UploadGone(error)) throw error;
        });
        if (leftover.upload.recordId) await uploads()?.drop(leftover.upload.recordId);
        await client.send(new DeleteObjectCommand({ Bucket, Key: leftover.upload.key })).catch(() => {});
      } else if (leftover.name.startsWith(`${prefix}tmp/`)) {
        await client.send(new DeleteObjectCommand({ Bucket, Key: leftover.name }));
      }
    } catch (error) {
      if (!isS3Missing(error)) throw new AppError("INTERNAL", `The object store could not remove ${leftover.name}: ${s3ServiceMessage(error)}`, { cause: error });
    }
  }

  return {
    put,
    get,
    stat: head,
    has: async (sha256) => (await head(sha256)) !== null,
    keep,
    list,
    listLeftovers,
    removeLeftover,
    async deleteIfIdleSince(sha256, before) {
      const digest = parseSha256(sha256);
      return underLock(digest, async () => {
        const found = await headFull(digest);
        if (!found || found.modifiedAt >= before) return false;
        await client.send(new DeleteObjectCommand({ Bucket, Key: keyOf(digest) }));
        return true;
      });
    },
    async delete(sha256) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket, Key: keyOf(parseSha256(sha256)) }));
      } catch (error) {
        if (!isS3Missing(error)) throw new AppError("INTERNAL", `The object store could not delete a blob: ${s3ServiceMessage(error)}`, { cause: error });
      }
    },
    async presignedUrl(sha256, { expiresInS, fileName, media }) {
      const digest = parseSha256(sha256);
      const name = fileName?.replace(/["\\\r\n]/g, "_");
      // Served as bytes to save, whatever they look like, or as a video to play: the bucket
      // never renders a blob as a page.
      const disposition = name ? `${media ? "inline" : "attachment"}; filename="${name}"` : undefined;
      return getSignedUrl(linkSigner(), new GetObjectCommand({ Bucket, Key: keyOf(digest), ResponseContentDisposition: disposition, ResponseContentType: media ?? "application/octet-stream" }), { expiresIn: expiresInS });
    },
    async check() {
      const url = new URL(settings.endpoint);
      await checkHost(url.hostname, "object-storage");
      try {
        await client.send(new HeadBucketCommand({ Bucket }));
      } catch (error) {
        const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
        const why = status === 404 ? `the bucket ${Bucket} does not exist there` : status === 403 ? `the access key is refused for the bucket ${Bucket} (check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY)` : s3ServiceMessage(error);
        throw new AppError("BAD_REQUEST", `Object storage at ${settings.endpoint} cannot be used: ${why}`, { cause: error });
      }
    },
  };
}
