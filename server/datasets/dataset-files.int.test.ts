import crypto from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { writeRawEpisode } from "../../tests/helpers/edge-episodes";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { swiftBucket, swiftSkipReason, type SwiftBucket } from "../../tests/helpers/s3-swift";
import type { OrgActor } from "../auth/roles";
import { env } from "../env";
import { silentProgress } from "../jobs/progress";
import { Prisma } from "../generated/prisma/client";
import { createLocalBlobStore } from "../storage/local-blob-store";
import type { S3BlobStore } from "../storage/s3-blob-store";
import { namedBlobs } from "../storage/blob-refs";
import { listFiles } from "../storage/blob-files";
import { directBlobLink, serveBlob } from "../storage/serve-blob";
import type { BlobStore } from "../storage/blob-store";
import { commitEpisode } from "./builder.service";
import { datasetDir, rawEpisodeDir } from "./datasets.schemas";
import { getEpisode, renameTask } from "./datasets.service";
import { encodeEpisode } from "./encode.service";
import { buildFilesOf, localBuildDir, removeCopiesOfDeletedDatasets, storeUnstoredBuilds } from "./build-files";
import { episodeFilesOf, localEpisodeDir, storeUnstoredEpisodes } from "./episode-files";
import { episodeStoreDir } from "./episode-store";

// An episode's files and a dataset's build live in the blob store, and their folders are caches:
// a machine that has never seen the dataset (another worker, a web process elsewhere) reads its
// build, builds it anew and plays its videos from the bucket, against a real S3 server (Swift's
// gateway).

const skip = swiftSkipReason();
const db = testDb();
const bucket = "gantry-episodes";
let swift: SwiftBucket | undefined;
let store: S3BlobStore;
let actor: OrgActor;
let tmp: string;

const machine = (name: string) => ({ ...env(), DATASETS_DIR: path.join(tmp, name, "datasets"), EDGE_UPLOAD_DIR: path.join(tmp, "edge") });
const sha = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

/** A dataset of `count` edge episodes, encoded on `settings`' machine into `blobs`. */
async function recordedDataset(settings: ReturnType<typeof machine>, blobs: BlobStore, count: number) {
  const repoId = `cache-${crypto.randomBytes(3).toString("hex")}`;
  const dataset = await db.dataset.create({ data: { orgId: actor.orgId, repoId } });
  const ids: string[] = [];
  for (let number = 0; number < count; number++) {
    await writeRawEpisode(rawEpisodeDir(settings, actor.orgId, repoId), { number, frames: 20, cameras: ["front", "wrist"] });
    const e = await db.episode.create({ data: { orgId: actor.orgId, datasetId: dataset.id, number, mode: "edge", task: "Pick the cube" } });
    await encodeEpisode(db, { episodeId: e.id, settings, progress: silentProgress, blobs, isLastAttempt: true, commit: (d, episodeId) => commitEpisode(d, { episodeId, settings, blobs }) });
    ids.push(e.id);
  }
  return { dataset, repoId, ids };
}

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "operator")).actor;
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-episode-files-"));
  if (skip) return;
  swift = await swiftBucket(bucket, "episodes/");
  store = swift.store({ db: () => db });
}, 180_000);
afterAll(async () => {
  swift?.close();
  await db.$disconnect();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe.skipIf(skip)("episodes kept in a bucket", () => {
  it("a machine that never saw the dataset builds it from the bucket, reads its build and plays its videos from it, and drops its copies once it is deleted", async () => {
    const a = machine("a");
    const b = machine("b");
    const { dataset, repoId, ids } = await recordedDataset(a, store, 2);

    // Each episode's files are named on its row and held by the bucket, byte for byte.
    const rows = await db.episode.findMany({ where: { id: { in: ids } }, orderBy: { number: "asc" } });
    for (const row of rows) {
      const files = episodeFilesOf(row)!;
      expect(Object.keys(files).sort()).toEqual(["episode.json", "front.mp4", "wrist.mp4"]);
      for (const [name, blob] of Object.entries(files)) {
        const local = await fs.readFile(path.join(episodeStoreDir(a, dataset.id, row.id), name));
        expect(blob).toEqual({ sha256: sha(local), bytes: local.length });
        expect(await store.stat(blob.sha256)).toEqual({ bytes: local.length });
      }
      // The sweep keeps them: a row names each.
      const shas = Object.values(files).map((f) => f.sha256);
      expect([...(await namedBlobs(db, shas))].sort()).toEqual([...new Set(shas)].sort());
    }

    // So is the build, file by file: a machine that never built it reads it from the bucket.
    const builtA = await fs.realpath(datasetDir(a, actor.orgId, repoId));
    const treeA = await listFiles(builtA);
    const built = await db.dataset.findUniqueOrThrow({ where: { id: dataset.id } });
    const buildFiles = buildFilesOf(built)!;
    expect(Object.keys(buildFiles).sort()).toEqual(treeA);
    const e = machine("e");
    const readE = await localBuildDir(store, e, built);
    expect(await fs.realpath(datasetDir(e, actor.orgId, repoId))).toBe(readE);
    expect(await listFiles(readE)).toEqual(treeA);
    for (const rel of treeA) {
      const bytes = await fs.readFile(path.join(readE, rel));
      expect(sha(bytes)).toBe(sha(await fs.readFile(path.join(builtA, rel))));
      expect(buildFiles[rel]).toEqual({ sha256: sha(bytes), bytes: bytes.length });
    }
    const buildShas = Object.values(buildFiles).map((f) => f.sha256);
    expect((await namedBlobs(db, buildShas)).size).toBe(new Set(buildShas).size);

    // Machine b has neither the raw files nor the episodes' folders nor the build; a rename
    // rebuilds there, from the bucket, keeping the build's layout (one file per episode here).
    await fs.rm(path.join(tmp, "edge"), { recursive: true, force: true });
    await renameTask(db, { actor, input: { datasetId: dataset.id, from: "Pick the cube", to: "Pick the red cube" }, settings: b, blobs: store });
    const builtB = await fs.realpath(datasetDir(b, actor.orgId, repoId));
    const files = await listFiles(builtB);
    expect(files).toEqual(treeA);
    const info = JSON.parse(await fs.readFile(path.join(builtB, "meta/info.json"), "utf8"));
    expect(info).toMatchObject({ total_episodes: 2, total_frames: 40 });
    for (const video of files.filter((f) => f.endsWith(".mp4"))) {
      expect(sha(await fs.readFile(path.join(builtB, video)))).toBe(buildFiles[video].sha256);
    }
    const tasks = await db.dataset.findUniqueOrThrow({ where: { id: dataset.id } });
    expect(buildFilesOf(tasks)!["meta/tasks.parquet"].sha256).not.toBe(buildFiles["meta/tasks.parquet"].sha256);
    expect(await fs.readdir(path.join(b.DATASETS_DIR, ".store", dataset.id, "episodes"))).toHaveLength(2);
    // Machine e's copy is now an old build: a reader there gets the new one.
    const readAgain = await localBuildDir(store, e, tasks);
    expect(readAgain).not.toBe(readE);
    expect(sha(await fs.readFile(path.join(readAgain, "meta/tasks.parquet")))).toBe(buildFilesOf(tasks)!["meta/tasks.parquet"].sha256);

    // A damaged cached copy (cut short) is fetched again.
    const front = path.join(episodeStoreDir(b, dataset.id, ids[0]), "front.mp4");
    const whole = await fs.readFile(front);
    await fs.truncate(front, 100);
    await localEpisodeDir(store, b, rows[0]);
    expect((await fs.readFile(front)).equals(whole)).toBe(true);

    // A web process on a third machine shows the episode: its rows are fetched, its videos are
    // not (they play from the bucket with ranged reads).
    const c = machine("c");
    const detail = await getEpisode(db, { orgId: actor.orgId, episodeId: ids[1], settings: c, blobs: store });
    expect(detail.frames?.state).toHaveLength(20);
    expect(detail.videos.map((v) => v.url)).toEqual([`/api/datasets/${dataset.id}/episodes/${ids[1]}/video/front`, `/api/datasets/${dataset.id}/episodes/${ids[1]}/video/wrist`]);
    expect(await fs.readdir(episodeStoreDir(c, dataset.id, ids[1]))).toEqual(["episode.json"]);
    const video = episodeFilesOf(rows[1])!["front.mp4"];
    const expected = await fs.readFile(path.join(episodeStoreDir(a, dataset.id, ids[1]), "front.mp4"));
    const part = await serveBlob({ blobs: store, sha256: video.sha256, what: "video", contentType: "video/mp4", disposition: "inline", headers: new Headers({ range: "bytes=100-1099" }) });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 100-1099/${expected.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(expected.subarray(100, 1100))).toBe(true);
    // A large one plays straight from the bucket, as a video (not a download), ranges too.
    expect(await directBlobLink(store, video.sha256, { minBytes: expected.length + 1, expiresInS: 60 })).toBeNull();
    const link = (await directBlobLink(store, video.sha256, { minBytes: expected.length, expiresInS: 60, fileName: "front.mp4", media: "video/mp4" }))!;
    const played = await fetch(link, { headers: { range: "bytes=0-99" } });
    expect(played.status).toBe(206);
    expect(played.headers.get("content-type")).toBe("video/mp4");
    expect(played.headers.get("content-disposition")).toBe('inline; filename="front.mp4"');
    expect(Buffer.from(await played.arrayBuffer()).equals(expected.subarray(0, 100))).toBe(true);

    // Deleted on one machine, the dataset's copies on the others go when a worker starts there.
    const copies = path.join(b.DATASETS_DIR, ".store", dataset.id);
    expect(await removeCopiesOfDeletedDatasets(db, b)).toBe(0);
    await db.dataset.delete({ where: { id: dataset.id } });
    // Not without the deletion on record (a folder of another database's dataset, say).
    expect(await removeCopiesOfDeletedDatasets(db, b)).toBe(0);
    await db.auditEvent.create({ data: { orgId: actor.orgId, actor: "test", action: "dataset.delete", target: dataset.id } });
    expect(await removeCopiesOfDeletedDatasets(db, b)).toBe(1);
    expect(await fs.stat(copies).catch(() => null)).toBeNull();

    // A file the bucket lost is said plainly, not built around.
    await store.delete(video.sha256);
    await expect(localEpisodeDir(store, machine("d"), rows[1])).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("front.mp4 of episode 1") });
  }, 180_000);
});

describe("episodes kept in the folder store", () => {
  it("shares one file between the blob and the episode's folder, and stores episodes and builds made before", async () => {
    const a = machine("folder");
    const blobs = createLocalBlobStore({ root: path.join(tmp, "folder", "blobs") });
    const { dataset, ids } = await recordedDataset(a, blobs, 1);
    const row = await db.episode.findUniqueOrThrow({ where: { id: ids[0] } });
    const files = episodeFilesOf(row)!;
    for (const [name, blob] of Object.entries(files)) {
      const own = (await blobs.localPath!(blob.sha256))!;
      expect((await fs.stat(path.join(episodeStoreDir(a, dataset.id, row.id), name))).ino).toBe((await fs.stat(own)).ino);
    }

    // An episode from before: its files only in its folder, nothing on its row.
    await db.episode.update({ where: { id: row.id }, data: { storedFiles: Prisma.DbNull } });
    const elsewhere = await storeUnstoredEpisodes(db, blobs, { settings: machine("empty"), limit: 10_000 });
    expect(elsewhere.stored).toBe(0);
    expect(episodeFilesOf(await db.episode.findUniqueOrThrow({ where: { id: row.id } }))).toBeNull();
    const here = await storeUnstoredEpisodes(db, blobs, { settings: a, limit: 10_000 });
    expect(here.stored).toBeGreaterThanOrEqual(1);
    expect(episodeFilesOf(await db.episode.findUniqueOrThrow({ where: { id: row.id } }))).toEqual(files);

    // And a build from before, under its dataset's lock, from the machine that has it.
    const before = await db.dataset.findUniqueOrThrow({ where: { id: dataset.id } });
    await db.dataset.update({ where: { id: dataset.id }, data: { buildFiles: Prisma.DbNull, buildManifest: Prisma.DbNull } });
    expect((await storeUnstoredBuilds(db, blobs, { settings: machine("empty"), limit: 10_000 })).stored).toBe(0);
    expect((await storeUnstoredBuilds(db, blobs, { settings: a, limit: 10_000 })).stored).toBeGreaterThanOrEqual(1);
    const after = await db.dataset.findUniqueOrThrow({ where: { id: dataset.id } });
    expect(after.buildFiles).toEqual(before.buildFiles);
    expect(after.buildManifest).toEqual(before.buildManifest);
  }, 120_000);
});
