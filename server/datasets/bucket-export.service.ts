import crypto from "node:crypto";
import fsp from "node:fs/promises";
import path from "node:path";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { ProgressReporter } from "../jobs/progress";
import { exportDatasetJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import type { OrgActor } from "../auth/roles";
import { checkHost } from "../security/outbound";
import type { BlobStore } from "../storage/blob-store";
import { PART_BYTES } from "../storage/s3-blob-store";
import { createS3Client, isS3Missing, s3ServiceMessage, type S3BucketSettings } from "../storage/s3-client";
import { snapshotBuild } from "./archive.service";

// A dataset's build written to a bucket as a plain LeRobot v3.0 tree (meta/, data/, videos/ under
// one prefix), for LeRobot, the Hugging Face tools or anything else that reads S3 to use without
// Gantry. Each organisation writes under its own folder of the instance's bucket:
//   <S3_PREFIX>datasets/<organisation id>/<folder>/…   (folder: the repo id unless named)
// The files are taken from a snapshot of the build, so a rebuild meanwhile changes nothing
// written; meta/info.json goes last, so a reader never takes a half-written tree for a dataset.
// Written again, a file the bucket already holds with the same bytes is skipped (its ETag is
// computed here as S3 computes it: the MD5, or for multipart objects the MD5 of the parts'
// MD5s and "-<parts>"), so a cut-off export resumes where it stopped.

/** Every part of a multipart object but the last: the store's one fixed size (R2 and Garage refuse uneven parts). */
const EXPORT_PART_BYTES = PART_BYTES;

/** The bucket written to: the instance's (`s3BucketSettings`), or null when none is set. */
export type BucketTarget = S3BucketSettings;

export const NO_BUCKET_MESSAGE = "No bucket is set for this instance: an instance admin sets S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY (see docs/storage.md)";

/** A folder name inside the organisation's part of the bucket: names of letters, digits, . _ -, joined by /. */
export const exportFolderSchema = z
  .string()
  .trim()
  .min(1, "Name the folder")
  .max(200, "The folder name is longer than 200 characters")
  .regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+){0,3}$/, "Use up to four names of letters, digits, dots, dashes and underscores, joined by /")
  .refine((f) => f.split("/").every((part) => part !== "." && part !== ".."), "A folder name cannot be . or ..");

export const bucketExportInput = z.object({ datasetId: z.uuid(), folder: exportFolderSchema.optional() });

/** Where an organisation's export lands: the key prefix, ending in /. */
export function exportKeyPrefix(target: Pick<BucketTarget, "prefix">, orgId: string, folder: string): string {
  return `${target.prefix}datasets/${z.uuid().parse(orgId)}/${exportFolderSchema.parse(folder)}/`;
}

export interface BucketExportResult {
  /** s3://bucket/prefix/ — what LeRobot or any S3 tool is given. */
  url: string;
  files: number;
  written: number;
  skipped: number;
  bytes: number;
}

/** The ETag S3 gives an object uploaded as this file is uploaded here (one PUT, or fixed parts). */
export async function expectedETag(file: string, size: number): Promise<string> {
  const handle = await fsp.open(file, "r");
  try {
    if (size <= EXPORT_PART_BYTES) return crypto.createHash("md5").update(await handle.readFile()).digest("hex");
    const parts: Buffer[] = [];
    const buffer = Buffer.allocUnsafe(EXPORT_PART_BYTES);
    for (let at = 0; at < size; at += EXPORT_PART_BYTES) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(EXPORT_PART_BYTES, size - at), at);
      parts.push(crypto.createHash("md5").update(buffer.subarray(0, bytesRead)).digest());
    }
    return `${crypto.createHash("md5").update(Buffer.concat(parts)).digest("hex")}-${parts.length}`;
  } finally {
    await handle.close();
  }
}

async function remoteETag(client: S3Client, Bucket: string, Key: string, signal?: AbortSignal): Promise<{ etag: string; size: number } | null> {
  try {
    const out = await client.send(new HeadObjectCommand({ Bucket, Key }), { abortSignal: signal });
    return { etag: (out.ETag ?? "").replace(/"/g, ""), size: out.ContentLength ?? -1 };
  } catch (error) {
    if (isS3Missing(error)) return null;
    throw error;
  }
}

/**
 * What the bucket holds under `Prefix` (key → ETag and size), in one listing request per
 * thousand objects rather than a HEAD per file; null when the key may not list the bucket, and
 * each file is asked about on its own instead.
 */
async function listRemote(client: S3Client, Bucket: string, Prefix: string, signal?: AbortSignal): Promise<Map<string, { etag: string; size: number }> | null> {
  const found = new Map<string, { etag: string; size: number }>();
  let ContinuationToken: string | undefined;
  try {
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket, Prefix, ContinuationToken }), { abortSignal: signal });
      for (const o of page.Contents ?? []) if (o.Key) found.set(o.Key, { etag: (o.ETag ?? "").replace(/"/g, ""), size: o.Size ?? -1 });
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  } catch (error) {
    if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 403) return null;
    throw error;
  }
  return found;
}

/**
 * Aborts the unfinished multipart uploads under the prefix, before this export starts any: those
 * of an earlier export killed in the middle of a large file (its own `catch` never ran), whose
 * parts the bucket would otherwise keep, and bill, for ever. A dataset exports one at a time, so
 * none is another's under way (the bucket's clock, and its `Initiated` to the second, are not
 * compared with ours). Skipped when the key may not list them.
 */
async function abortLeftUploads(client: S3Client, Bucket: string, Prefix: string, signal?: AbortSignal): Promise<number> {
  let aborted = 0;
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  try {
    do {
      const page = await client.send(new ListMultipartUploadsCommand({ Bucket, Prefix, KeyMarker, UploadIdMarker }), { abortSignal: signal });
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId) continue;
        await client.send(new AbortMultipartUploadCommand({ Bucket, Key: u.Key, UploadId: u.UploadId }), { abortSignal: signal }).catch(() => {});
        aborted++;
      }
      [KeyMarker, UploadIdMarker] = page.IsTruncated ? [page.NextKeyMarker, page.NextUploadIdMarker] : [undefined, undefined];
    } while (KeyMarker);
  } catch (error) {
    if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 403) return aborted;
    throw error;
  }
  return aborted;
}

async function uploadFile(client: S3Client, Bucket: string, Key: string, file: string, size: number, signal?: AbortSignal): Promise<void> {
  if (size <= EXPORT_PART_BYTES) {
    await client.send(new PutObjectCommand({ Bucket, Key, Body: await fsp.readFile(file), ContentLength: size }), { abortSignal: signal });
    return;
  }
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }), { abortSignal: signal });
  const handle = await fsp.open(file, "r");
  try {
    const parts: { ETag: string; PartNumber: number }[] = [];
    for (let at = 0, PartNumber = 1; at < size; at += EXPORT_PART_BYTES, PartNumber++) {
      const body = Buffer.allocUnsafe(Math.min(EXPORT_PART_BYTES, size - at));
      await handle.read(body, 0, body.length, at);
      const out = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: body, ContentLength: body.length }), { abortSignal: signal });
      parts.push({ ETag: out.ETag!, PartNumber });
    }
    await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }), { abortSignal: signal });
  } catch (error) {
    await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => {});
    throw error;
  } finally {
    await handle.close();
  }
}

export interface BucketExportInput {
  orgId: string;
  datasetId: string;
  folder?: string;
  target: BucketTarget | null;
  settings: { DATASETS_DIR: string };
  blobs: BlobStore;
  progress: ProgressReporter;
  signal?: AbortSignal;
}

export async function exportDatasetToBucket(db: Db, { orgId, datasetId, folder, target, settings, blobs, progress, signal }: BucketExportInput): Promise<BucketExportResult> {
  if (!target) throw new AppError("CONFLICT", NO_BUCKET_MESSAGE);
  await checkHost(new URL(target.endpoint).hostname, "object-storage");
  const snapshot = await snapshotBuild(db, { orgId, datasetId, settings, blobs });
  try {
    const keyPrefix = exportKeyPrefix(target, orgId, folder ?? snapshot.repoId);
    const client = createS3Client(target);
    // meta/info.json last: until it is there, the prefix is not a dataset to any reader.
    const files = [...snapshot.files.filter((f) => f !== "meta/info.json"), ...snapshot.files.filter((f) => f === "meta/info.json")];
    const sizes = await Promise.all(files.map(async (f) => (await fsp.stat(path.join(snapshot.dir, f))).size));
    const total = sizes.reduce((a, b) => a + b, 0);
    await progress.step(`Writing ${files.length} files (${(total / 1024 ** 2).toFixed(1)} MiB) to s3://${target.bucket}/${keyPrefix}`, 0);
    let done = 0;
    let written = 0;
    let skipped = 0;
    let reported = Date.now();
    try {
      const left = await abortLeftUploads(client, target.bucket, keyPrefix, signal);
      if (left) await progress.log(`Aborted ${left} unfinished upload${left === 1 ? "" : "s"} an earlier export left under s3://${target.bucket}/${keyPrefix}`);
      const listed = await listRemote(client, target.bucket, keyPrefix, signal);
      for (const [i, rel] of files.entries()) {
        signal?.throwIfAborted();
        const file = path.join(snapshot.dir, rel);
        const Key = keyPrefix + rel;
        const there = listed ? (listed.get(Key) ?? null) : await remoteETag(client, target.bucket, Key, signal);
        let isThere = false;
        if (there?.size === sizes[i]) {
          const expected = await expectedETag(file, sizes[i]);
          // A listing may show an object written in parts with another ETag than its HEAD gives
          // (some S3 gateways): such a one is asked about again before it is written anew.
          isThere = there.etag === expected || (listed !== null && (await remoteETag(client, target.bucket, Key, signal))?.etag === expected);
        }
        if (isThere) skipped++;
        else {
          await uploadFile(client, target.bucket, Key, file, sizes[i], signal);
          written++;
        }
        done += sizes[i];
        if (Date.now() - reported > 1000 || i === files.length - 1) {
          reported = Date.now();
          await progress.set(total ? done / total : 1, `${i + 1} of ${files.length} files`);
        }
      }
    } catch (error) {
      if (signal?.aborted || error instanceof AppError) throw error;
      throw new AppError("INTERNAL", `The bucket refused the export: ${s3ServiceMessage(error)}`, { cause: error });
    }
    const url = `s3://${target.bucket}/${keyPrefix}`;
    await progress.log(`${url}: ${written} files written, ${skipped} already there`);
    return { url, files: files.length, written, skipped, bytes: total };
  } finally {
    await snapshot.cleanup().catch(() => {});
  }
}

const exportResultSchema = z.object({ url: z.string(), files: z.number(), written: z.number(), skipped: z.number(), bytes: z.number() });

export const bucketExportStatusSchema = z.object({
  /** Whether the instance has a bucket to write to. */
  hasBucket: z.boolean(),
  /** Where the export goes without a folder named: s3://bucket/…/<repo id>/. */
  defaultUrl: z.string().nullable(),
  job: z.object({ id: z.uuid(), status: z.string(), progress: z.number(), step: z.string().nullable(), error: z.string().nullable(), result: exportResultSchema.nullable() }).nullable(),
});
export type BucketExportStatus = z.infer<typeof bucketExportStatusSchema>;

/** The dataset's latest export to the bucket, and whether there is a bucket at all. */
export async function bucketExportStatus(db: Db, { orgId, datasetId, target }: { orgId: string; datasetId: string; target: BucketTarget | null }): Promise<BucketExportStatus> {
  const dataset = await db.dataset.findFirst({ where: { id: datasetId, orgId }, select: { repoId: true } });
  if (!dataset) throw new AppError("NOT_FOUND", "No such dataset in this organisation");
  const job = await db.job.findFirst({
    where: { orgId, kind: exportDatasetJob.name, payload: { path: ["datasetId"], equals: datasetId } },
    orderBy: { createdAt: "desc" },
    select: { id: true, status: true, progress: true, step: true, error: true, result: true },
  });
  const result = exportResultSchema.safeParse(job?.result);
  return {
    hasBucket: target !== null,
    defaultUrl: target ? `s3://${target.bucket}/${exportKeyPrefix(target, orgId, dataset.repoId)}` : null,
    job: job ? { ...job, result: result.success ? result.data : null } : null,
  };
}

/** Queues the export; refused without a bucket, without a build, or while one is under way. */
export async function startBucketExport(db: Db, { actor, input, target }: { actor: OrgActor; input: z.infer<typeof bucketExportInput>; target: BucketTarget | null }): Promise<{ jobId: string }> {
  const dataset = await db.dataset.findFirst({ where: { id: input.datasetId, orgId: actor.orgId }, select: { id: true, repoId: true, buildId: true } });
  if (!dataset) throw new AppError("NOT_FOUND", "No such dataset in this organisation");
  if (!target) throw new AppError("CONFLICT", NO_BUCKET_MESSAGE);
  if (!dataset.buildId) throw new AppError("CONFLICT", `${dataset.repoId} has no episodes yet; there is nothing to export`);
  return db.$transaction(async (tx) => {
    // One export of a dataset at a time, whichever web process is asked.
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`bucket-export:${dataset.id}`}, 0))`;
    const running = await tx.job.findFirst({ where: { orgId: actor.orgId, kind: exportDatasetJob.name, status: { in: ["queued", "running"] }, payload: { path: ["datasetId"], equals: dataset.id } }, select: { id: true } });
    if (running) throw new AppError("CONFLICT", `${dataset.repoId} is already being written to the bucket; wait for that export to finish`);
    return enqueue(exportDatasetJob, { datasetId: dataset.id, ...(input.folder ? { folder: input.folder } : {}) }, { tx, orgId: actor.orgId, createdById: actor.userId });
  });
}
