import { execFile } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { writeV3Dataset } from "../../tests/helpers/lerobot-datasets";
import { swiftBucket, swiftSkipReason, type SwiftBucket } from "../../tests/helpers/s3-swift";
import type { OrgActor } from "../auth/roles";
import { env } from "../env";
import { importDatasetJob } from "../jobs/catalog";
import { silentProgress } from "../jobs/progress";
import { listFiles } from "../storage/blob-files";
import { namedBlobs } from "../storage/blob-refs";
import type { S3BlobStore } from "../storage/s3-blob-store";
import { archiveContentDir, archiveDir, archiveFilesSchema, sweepArchiveUploads } from "./archive-uploads";
import { deleteDataset } from "./delete.service";
import { runImport } from "./import.service";
import { discardStaged, importArchiveUpload, importStaged } from "./upload-import.service";

// An uploaded archive goes through the blob store, not a shared disk: web process a takes the
// upload, web process b (another machine) confirms its features, worker c (a third) imports it —
// each with its own DATASETS_DIR, the archive's files in a bucket of a real S3 server.

const run = promisify(execFile);
const skip = swiftSkipReason();
const db = testDb();
const bucket = "gantry-archives";
let swift: SwiftBucket | undefined;
let store: S3BlobStore;
let actor: OrgActor;
let stranger: OrgActor;
let tmp: string;
const unique = () => Math.random().toString(36).slice(2, 8);

const machine = (name: string) => ({ ...env(), DATASETS_DIR: path.join(tmp, name, "datasets"), EDGE_UPLOAD_DIR: path.join(tmp, name, "edge"), datasetImportRoots: [] as string[] });

/** A LeRobot v3.0 dataset whose features are not named as LeRobot names them (so its import waits for confirmation), as a .tar.gz. */
async function archive(name: string): Promise<string> {
  const folder = path.join(tmp, "made", name);
  await writeV3Dataset(folder, { actionKey: "actions", stateKey: "state", episodes: 2, frames: 5 });
  const file = path.join(tmp, "made", `${name}.tar.gz`);
  await run("tar", ["-czf", file, "-C", path.dirname(folder), name]);
  return file;
}

const upload = (on: ReturnType<typeof machine>, file: string, repoId: string, mapping?: { action: string; state: string }) =>
  importArchiveUpload(db, { actor, body: fs.createReadStream(file), declaredBytes: fs.statSync(file).size, repoId, from: path.basename(file), mapping, settings: on, blobs: store });

/** Runs an import job as a worker on `on` would. */
async function runJobOn(on: ReturnType<typeof machine>, jobId: string) {
  const job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
  await db.$executeRaw`SELECT graphile_worker.remove_job(${jobId}::text)`;
  return runImport(db, { ...importDatasetJob.payload.parse(job.payload), settings: on, blobs: store, progress: silentProgress });
}

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "operator")).actor;
  stranger = (await createOrgWithMember(db, "owner")).actor;
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "gantry-archive-uploads-"));
  if (skip) return;
  swift = await swiftBucket(bucket, "archives/");
  store = swift.store({ db: () => db });
}, 180_000);
afterAll(async () => {
  swift?.close();
  await db.$disconnect();
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe.skipIf(skip)("uploaded archives kept in a bucket", () => {
  it("is taken on one machine, confirmed on a second and imported on a third; then nothing of it is kept", async () => {
    const [a, b, c] = [machine("a"), machine("b"), machine("c")];
    const name = `upload-${unique()}`;
    const file = await archive(name);
    const repoId = `staged-${unique()}`;

    const staged = await upload(a, file, repoId);
    expect(staged.kind).toBe("staged");
    if (staged.kind !== "staged") return;
    const row = await db.archiveUpload.findUniqueOrThrow({ where: { id: staged.stagingId } });
    const files = archiveFilesSchema.parse(row.files);
    expect(Object.keys(files).sort()).toEqual(await listFiles(archiveContentDir(a, staged.stagingId)));
    expect(Object.keys(files)).toContain(`${name}/meta/info.json`);
    for (const blob of Object.values(files)) expect(await store.stat(blob.sha256)).toEqual({ bytes: blob.bytes });
    // The sweep keeps what a waiting upload names.
    const shas = Object.values(files).map((f) => f.sha256);
    expect((await namedBlobs(db, shas)).size).toBe(new Set(shas).size);

    // Another organisation cannot see it, let alone import it.
    await expect(importStaged(db, { actor: stranger, input: { stagingId: staged.stagingId, repoId, mapping: { action: "actions", state: "state" } }, settings: b, blobs: store })).rejects.toMatchObject({ code: "NOT_FOUND" });

    // Machine b confirms: it fetches only the archive's meta/info.json to check the mapping.
    const started = await importStaged(db, { actor, input: { stagingId: staged.stagingId, repoId, mapping: { action: "actions", state: "state" } }, settings: b, blobs: store });
    expect(await listFiles(archiveContentDir(b, staged.stagingId))).toEqual([`${name}/meta/info.json`]);
    await expect(importStaged(db, { actor, input: { stagingId: staged.stagingId, repoId: `again-${unique()}`, mapping: { action: "actions", state: "state" } }, settings: b, blobs: store })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });

    // Machine c, which saw none of it, imports it from the bucket.
    expect(await runJobOn(c, started.jobId)).toMatchObject({ episodes: 2 });
    expect(await db.episode.count({ where: { datasetId: started.datasetId, status: "ready" } })).toBe(2);
    expect(await db.archiveUpload.count({ where: { id: staged.stagingId } })).toBe(0);
    expect(fs.existsSync(archiveDir(c, staged.stagingId))).toBe(false);
    // The copies a and b keep go with their sweep, once a day has passed.
    expect(fs.existsSync(archiveDir(a, staged.stagingId))).toBe(true);
    await sweepArchiveUploads(db, a);
    expect(fs.existsSync(archiveDir(a, staged.stagingId))).toBe(true);
    await sweepArchiveUploads(db, a, Date.now() + 2 * 24 * 3600_000);
    await sweepArchiveUploads(db, b, Date.now() + 2 * 24 * 3600_000);
    expect(fs.existsSync(archiveDir(a, staged.stagingId))).toBe(false);
    expect(fs.existsSync(archiveDir(b, staged.stagingId))).toBe(false);
  });

  it("an upload that names its mapping is imported at once by a worker elsewhere; a discarded or expired one is forgotten", async () => {
    const [a, b, c] = [machine("a2"), machine("b2"), machine("c2")];
    const file = await archive(`direct-${unique()}`);
    const direct = await upload(a, file, `direct-${unique()}`, { action: "actions", state: "state" });
    expect(direct.kind).toBe("started");
    if (direct.kind !== "started") return;
    const job = await db.job.findUniqueOrThrow({ where: { id: direct.jobId } });
    const payload = importDatasetJob.payload.parse(job.payload);
    expect(payload.archiveId).toMatch(/^[0-9a-f]{16}$/);
    expect(await runJobOn(c, direct.jobId)).toMatchObject({ episodes: 2 });
    // Run again (its worker killed once the import was done, before the job said so): the import stands.
    expect(await runImport(db, { ...payload, settings: c, blobs: store, progress: silentProgress })).toMatchObject({ episodes: 2 });
    // A worker that finds the upload gone before a dataset was imported from it says so.
    const { orgId } = await db.dataset.findUniqueOrThrow({ where: { id: payload.datasetId } });
    const notImported = await db.dataset.create({ data: { orgId, repoId: `gone-${unique()}` } });
    await expect(runImport(db, { ...payload, datasetId: notImported.id, settings: c, blobs: store, progress: silentProgress })).rejects.toThrow(/uploaded archive is no longer kept/);

    // Discarded on another machine: gone for everyone.
    const discarded = await upload(a, file, `discarded-${unique()}`);
    if (discarded.kind !== "staged") throw new Error("expected the upload to wait for confirmation");
    await expect(discardStaged(db, { actor: stranger, input: { stagingId: discarded.stagingId }, settings: b })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await discardStaged(db, { actor, input: { stagingId: discarded.stagingId }, settings: b });
    await expect(importStaged(db, { actor, input: { stagingId: discarded.stagingId, repoId: `late-${unique()}`, mapping: { action: "actions", state: "state" } }, settings: a, blobs: store })).rejects.toThrow(
      /no longer waiting for its import to be confirmed/,
    );

    // Left waiting over a day: the sweep forgets it, and its blobs are no longer named.
    const left = await upload(a, file, `left-${unique()}`);
    if (left.kind !== "staged") throw new Error("expected the upload to wait for confirmation");
    const leftFiles = archiveFilesSchema.parse((await db.archiveUpload.findUniqueOrThrow({ where: { id: left.stagingId } })).files);
    await sweepArchiveUploads(db, a, Date.now() + 2 * 24 * 3600_000);
    expect(await db.archiveUpload.count({ where: { id: left.stagingId } })).toBe(0);
    expect(fs.existsSync(archiveDir(a, left.stagingId))).toBe(false);
    const info = Object.entries(leftFiles).find(([rel]) => rel.endsWith("meta/info.json"))![1];
    expect((await namedBlobs(db, [info.sha256])).size).toBe(0);
  });

  it("deleting a dataset whose import failed takes its upload with it", async () => {
    const a = machine("a3");
    const file = await archive(`failing-${unique()}`);
    const started = await upload(a, file, `failing-${unique()}`, { action: "actions", state: "state" });
    if (started.kind !== "started") throw new Error("expected the import to start");
    const id = importDatasetJob.payload.parse((await db.job.findUniqueOrThrow({ where: { id: started.jobId } })).payload).archiveId!;
    await db.$executeRaw`SELECT graphile_worker.remove_job(${started.jobId}::text)`;
    await db.job.update({ where: { id: started.jobId }, data: { status: "failed", error: "stopped here" } });
    expect(await db.archiveUpload.count({ where: { id } })).toBe(1);
    await deleteDataset(db, { actor, datasetId: started.datasetId, settings: a, minRole: "operator" });
    expect(await db.archiveUpload.count({ where: { id } })).toBe(0);
  });
});
