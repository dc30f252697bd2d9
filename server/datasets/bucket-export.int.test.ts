import crypto from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, UploadPartCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { sharedSwift, swiftSkipReason, type TestS3 } from "../../tests/helpers/s3-swift";
import type { OrgActor } from "../auth/roles";
import { env } from "../env";
import { silentProgress, type ProgressReporter } from "../jobs/progress";
import { createS3Client } from "../storage/s3-client";
import { bucketExportInput, bucketExportStatus, exportDatasetToBucket, startBucketExport, type BucketTarget } from "./bucket-export.service";
import { PART_BYTES as EXPORT_PART_BYTES } from "../storage/s3-blob-store";
import { datasetDir } from "./datasets.schemas";
import { runImport, startImport } from "./import.service";
import { blobStore } from "../storage/blobs";
import { listFiles } from "../storage/blob-files";

// A dataset written to a real S3 server (Swift's gateway) as a plain LeRobot v3.0 tree: the same
// files byte for byte under the organisation's folder, info.json last, a second run skipping
// what is there, a changed object written again, and nothing for another organisation.

const skip = swiftSkipReason();
const db = testDb();
const FIXTURE = path.resolve("tests/fixtures/so101-record-v3");
const bucket = "gantry-exports";
let s3: TestS3;
let client: S3Client;
let target: BucketTarget;
let actor: OrgActor;
let tmp: string;
let datasetId: string;
let repoId: string;
const settings = () => ({ ...env(), DATASETS_DIR: path.join(tmp, "datasets") });

async function listKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key!));
    ContinuationToken = page.NextContinuationToken;
  } while (ContinuationToken);
  return keys.sort();
}

async function getObject(Key: string): Promise<Buffer> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

/** Progress as a person would see it: the steps and messages, in order. */
function recorder(): ProgressReporter & { lines: string[]; last: number } {
  const r = {
    lines: [] as string[],
    last: 0,
    step: async (name: string) => void r.lines.push(name),
    set: async (fraction: number, message?: string) => {
      r.last = fraction;
      if (message) r.lines.push(message);
    },
    log: async (message: string) => void r.lines.push(message),
  };
  return r;
}

beforeAll(async () => {
  if (skip) return;
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-bucket-export-"));
  actor = (await createOrgWithMember(db, "operator")).actor;
  s3 = await sharedSwift();
  target = { endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, bucket, prefix: "instance-a/" };
  client = createS3Client(target);
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  repoId = `bucket-${Date.now().toString(36)}`;
  const started = await startImport(db, { actor, repoId, sourceDir: FIXTURE, removeSource: false, from: "so101-record-v3", settings: settings() });
  await db.$executeRaw`SELECT graphile_worker.remove_job(${started.jobId}::text)`;
  await runImport(db, { datasetId: started.datasetId, sourceDir: FIXTURE, removeSource: false, settings: settings(), blobs: blobStore(), progress: silentProgress });
  datasetId = started.datasetId;
  // A video larger than one part, so the tree holds a multipart object as real datasets do.
  const video = path.join(datasetDir(settings(), actor.orgId, repoId), "videos/observation.images.front/chunk-000/file-000.mp4");
  await fs.mkdir(path.dirname(video), { recursive: true });
  await fs.writeFile(video, crypto.randomBytes(2 * EXPORT_PART_BYTES + 12345));
}, 240_000);

afterAll(async () => {
  await s3?.stop();
  await db.$disconnect();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

describe.skipIf(skip)("a dataset written to a bucket", () => {
  it("writes the build as a plain LeRobot v3.0 tree under the organisation's folder, and a second run skips what is there", async () => {
    const build = await fs.realpath(datasetDir(settings(), actor.orgId, repoId));
    const files = await listFiles(build);
    expect(files).toContain("meta/info.json");

    const { jobId } = await startBucketExport(db, { actor, input: { datasetId }, target });
    // One export of a dataset at a time.
    await expect(startBucketExport(db, { actor, input: { datasetId }, target })).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringMatching(/already being written/) });
    await db.$executeRaw`SELECT graphile_worker.remove_job(${jobId}::text)`;
    await db.job.update({ where: { id: jobId }, data: { status: "cancelled" } });

    const progress = recorder();
    const first = await exportDatasetToBucket(db, { orgId: actor.orgId, datasetId, target, settings: settings(), blobs: blobStore(), progress });
    const prefix = `instance-a/datasets/${actor.orgId}/${repoId}/`;
    expect(first).toMatchObject({ url: `s3://${bucket}/${prefix}`, files: files.length, written: files.length, skipped: 0 });
    expect(progress.last).toBe(1);
    expect(progress.lines[0]).toMatch(new RegExp(`^Writing ${files.length} files`));
    expect(await listKeys(prefix)).toEqual(files.map((f) => prefix + f).sort());
    for (const f of files) expect((await getObject(prefix + f)).equals(await fs.readFile(path.join(build, f))), f).toBe(true);
    expect(JSON.parse((await getObject(`${prefix}meta/info.json`)).toString("utf8"))).toMatchObject({ codebase_version: "v3.0", total_episodes: 4 });

    // Again: every object is there with the same bytes (single and multipart ETags alike).
    const second = await exportDatasetToBucket(db, { orgId: actor.orgId, datasetId, target, settings: settings(), blobs: blobStore(), progress: silentProgress });
    expect(second).toMatchObject({ written: 0, skipped: files.length });

    // An export killed in the middle of a large file leaves its multipart upload open: the next run aborts it.
    const videoKey = `${prefix}videos/observation.images.front/chunk-000/file-000.mp4`;
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: videoKey }));
    await client.send(new UploadPartCommand({ Bucket: bucket, Key: videoKey, UploadId, PartNumber: 1, Body: crypto.randomBytes(EXPORT_PART_BYTES) }));
    const openUploads = async () => (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }))).Uploads ?? [];
    expect((await openUploads()).map((u) => u.UploadId)).toEqual([UploadId]);
    const afterKill = recorder();
    expect(await exportDatasetToBucket(db, { orgId: actor.orgId, datasetId, target, settings: settings(), blobs: blobStore(), progress: afterKill })).toMatchObject({ written: 0, skipped: files.length });
    expect(await openUploads()).toEqual([]);
    expect(afterKill.lines).toContain(`Aborted 1 unfinished upload an earlier export left under s3://${bucket}/${prefix}`);

    // An object changed in the bucket is written again; the rest stay.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}meta/stats.json`, Body: "{}" }));
    const third = await exportDatasetToBucket(db, { orgId: actor.orgId, datasetId, target, settings: settings(), blobs: blobStore(), progress: silentProgress });
    expect(third).toMatchObject({ written: 1, skipped: files.length - 1 });
    expect((await getObject(`${prefix}meta/stats.json`)).equals(await fs.readFile(path.join(build, "meta/stats.json")))).toBe(true);

    // A folder of the person's choosing, still inside the organisation's part of the bucket.
    const named = await exportDatasetToBucket(db, { orgId: actor.orgId, datasetId, folder: "team/pick-v2", target, settings: settings(), blobs: blobStore(), progress: silentProgress });
    expect(named.url).toBe(`s3://${bucket}/instance-a/datasets/${actor.orgId}/team/pick-v2/`);
    // The export's snapshot is gone.
    expect(await fs.readdir(path.join(settings().DATASETS_DIR, ".imports"))).toEqual([]);

    const status = await bucketExportStatus(db, { orgId: actor.orgId, datasetId, target });
    expect(status).toMatchObject({ hasBucket: true, defaultUrl: `s3://${bucket}/${prefix}`, job: { id: jobId, status: "cancelled" } });
  }, 180_000);

  it("refuses folders that leave the organisation's part, a missing bucket, and another organisation's dataset", async () => {
    for (const folder of ["../other-org", "a/../../b", "/abs", "a//b", "..", "x".repeat(201), "a b", "a/b/c/d/e"]) {
      expect(bucketExportInput.safeParse({ datasetId, folder }).success, folder).toBe(false);
    }
    expect(bucketExportInput.safeParse({ datasetId, folder: "team/pick-v2" }).success).toBe(true);
    await expect(startBucketExport(db, { actor, input: { datasetId }, target: null })).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringMatching(/S3_ENDPOINT, S3_BUCKET/) });
    await expect(exportDatasetToBucket(db, { orgId: actor.orgId, datasetId, target: null, settings: settings(), blobs: blobStore(), progress: silentProgress })).rejects.toMatchObject({ code: "CONFLICT" });
    const other = (await createOrgWithMember(db, "admin")).actor;
    await expect(startBucketExport(db, { actor: other, input: { datasetId }, target })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(exportDatasetToBucket(db, { orgId: other.orgId, datasetId, target, settings: settings(), blobs: blobStore(), progress: silentProgress })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(bucketExportStatus(db, { orgId: other.orgId, datasetId, target })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await listKeys(`instance-a/datasets/${other.orgId}/`)).toEqual([]);
  });

  it("says what the bucket answered when it refuses", async () => {
    const wrongKey = { ...target, secretAccessKey: "not-the-key" };
    await expect(exportDatasetToBucket(db, { orgId: actor.orgId, datasetId, target: wrongKey, settings: settings(), blobs: blobStore(), progress: silentProgress })).rejects.toMatchObject({ message: expect.stringMatching(/^The bucket refused the export: \w+ \(HTTP 403\)/) });
    const noBucket = { ...target, bucket: "no-such-bucket" };
    await expect(exportDatasetToBucket(db, { orgId: actor.orgId, datasetId, target: noBucket, settings: settings(), blobs: blobStore(), progress: silentProgress })).rejects.toThrow(/The bucket refused the export: NoSuchBucket/);
  });
});
