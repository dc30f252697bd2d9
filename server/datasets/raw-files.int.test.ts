import fs from "node:fs";
import fsp from "node:fs/promises";
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
import { namedBlobs } from "../storage/blob-refs";
import type { BlobStore } from "../storage/blob-store";
import { createLocalBlobStore } from "../storage/local-blob-store";
import type { S3BlobStore } from "../storage/s3-blob-store";
import { commitEpisode } from "./builder.service";
import { rawEpisodeDir } from "./datasets.schemas";
import { retryEpisode } from "./datasets.service";
import { encodeEpisode } from "./encode.service";
import { registerRawEpisode } from "./ingest.service";
import { rawCacheDir, rawFilesOf } from "./raw-files";

// A raw episode goes from the web process that took it to the worker that encodes it through the
// bucket, not a shared folder: the two "machines" here have EDGE_UPLOAD_DIRs (and DATASETS_DIRs)
// of their own, against a real S3 server (Swift's gateway).

const skip = swiftSkipReason();
const db = testDb();
const bucket = "gantry-raw-episodes";
let swift: SwiftBucket | undefined;
let store: S3BlobStore;
let actor: OrgActor;
let tmp: string;

const machine = (name: string) => ({ ...env(), DATASETS_DIR: path.join(tmp, name, "datasets"), EDGE_UPLOAD_DIR: path.join(tmp, name, "edge") });
const unique = () => Math.random().toString(36).slice(2, 8);

/** Registers as a web process on `on` does; `blobs` null: without a blob store (as before raw episodes were handed over). */
const register = (on: ReturnType<typeof machine>, repoId: string, episodeIndex: number, blobs: BlobStore | null = store) =>
  registerRawEpisode(db, { orgId: actor.orgId, createdById: actor.userId, repoId, episodeIndex, task: "Pick the cube", mode: "edge", blobs: blobs ?? undefined, settings: on });

const encodeOn = (on: ReturnType<typeof machine>, episodeId: string) =>
  encodeEpisode(db, { episodeId, settings: on, progress: silentProgress, blobs: store, isLastAttempt: true, commit: (d, id) => commitEpisode(d, { episodeId: id, settings: on, blobs: store }) });

const listTree = async (dir: string): Promise<string[]> => (fs.existsSync(dir) ? (await fsp.readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name) : []);

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "operator")).actor;
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "gantry-raw-files-"));
  if (skip) return;
  swift = await swiftBucket(bucket, "raw/");
  store = swift.store({ db: () => db });
}, 180_000);
afterAll(async () => {
  swift?.close();
  await db.$disconnect();
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe.skipIf(skip)("raw episodes handed over through a bucket", () => {
  it("is put in the bucket when registered on the web machine and encoded by a worker that never saw its files", async () => {
    const [web, worker] = [machine("web"), machine("worker")];
    const repoId = `handover-${unique()}`;
    const webRaw = rawEpisodeDir(web, actor.orgId, repoId);
    await writeRawEpisode(webRaw, { number: 0, frames: 20, cameras: ["front", "wrist"] });

    const { episodeId, jobId } = await register(web, repoId, 0);
    expect(jobId).not.toBeNull();
    const row = await db.episode.findUniqueOrThrow({ where: { id: episodeId } });
    const files = rawFilesOf(row)!;
    expect(Object.keys(files).sort()).toEqual(["data/episode-0.jsonl", ...["front", "wrist"].flatMap((c) => Array.from({ length: 20 }, (_, i) => `images/${c}/episode-0/frame-${i}.png`))].sort());
    // In the bucket and named (the sweep keeps them); the web machine's copy is gone.
    for (const blob of Object.values(files)) expect(await store.stat(blob.sha256)).toEqual({ bytes: blob.bytes });
    const shas = [...new Set(Object.values(files).map((f) => f.sha256))];
    expect((await namedBlobs(db, shas)).size).toBe(shas.length);
    expect(await listTree(webRaw)).toEqual([]);
    // Registered again while it waits (its files are in the bucket only): it is registered.
    expect(await register(web, repoId, 0)).toMatchObject({ episodeId, jobId, alreadyRegistered: true });

    // The worker's machine fetches the files, encodes, and forgets them once the episode is in.
    expect(await encodeOn(worker, episodeId)).toMatchObject({ frames: 20, cameras: ["front", "wrist"] });
    const done = await db.episode.findUniqueOrThrow({ where: { id: episodeId } });
    expect(done).toMatchObject({ status: "ready", length: 20, rawFiles: null });
    // Fetched into a folder of the worker's own (not its EDGE_UPLOAD_DIR), removed once done.
    expect(await listTree(rawEpisodeDir(worker, actor.orgId, repoId))).toEqual([]);
    expect(fs.existsSync(rawCacheDir(worker, done))).toBe(false);
    expect((await namedBlobs(db, shas)).size).toBe(0);
  });

  it("keeps a failed episode's files for a retry from any machine, and says which file the bucket lost", async () => {
    const [web, worker] = [machine("web2"), machine("worker2")];
    const repoId = `handover-failed-${unique()}`;
    const webRaw = rawEpisodeDir(web, actor.orgId, repoId);
    await writeRawEpisode(webRaw, { number: 3, frames: 12, cameras: ["front"] });
    // One frame short of the data file's rows: a mistake no retry mends by itself.
    await fsp.rm(path.join(webRaw, "images/front/episode-3/frame-11.png"));
    const { episodeId } = await register(web, repoId, 3);
    await expect(encodeOn(worker, episodeId)).rejects.toThrow(/Camera front has 11 frames but the data file has 12 rows/);
    const failed = await db.episode.findUniqueOrThrow({ where: { id: episodeId } });
    expect(failed.status).toBe("failed");
    expect(rawFilesOf(failed)).not.toBeNull();
    expect((await listTree(rawCacheDir(worker, failed))).length).toBe(12);
    // The web machine has no copy, yet a retry is taken: the files are in the bucket.
    expect(await listTree(webRaw)).toEqual([]);
    const retried = await retryEpisode(db, { actor, episodeId, settings: web });
    expect(retried.jobId).toBeTruthy();

    // A file the bucket no longer holds is named, on a machine that lacks it.
    const files = rawFilesOf(failed)!;
    await store.delete(files["data/episode-3.jsonl"].sha256);
    await expect(encodeOn(machine("worker3"), episodeId)).rejects.toThrow(/data\/episode-3\.jsonl of episode 3 is not on this machine and the blob store does not hold it/);
  });

  it("an episode registered before the handover, retried, is put in the bucket then", async () => {
    const [web, worker] = [machine("web5"), machine("worker5")];
    const repoId = `handover-later-${unique()}`;
    const webRaw = rawEpisodeDir(web, actor.orgId, repoId);
    await writeRawEpisode(webRaw, { number: 0, frames: 6, cameras: ["front"] });
    // Registered without the bucket (as before), and failed.
    const { episodeId } = await register(web, repoId, 0, null);
    await db.episode.update({ where: { id: episodeId }, data: { status: "failed", error: "stopped here" } });
    expect((await db.episode.findUniqueOrThrow({ where: { id: episodeId } })).rawFiles).toBeNull();
    await retryEpisode(db, { actor, episodeId, settings: web, blobs: store });
    expect(Object.keys(rawFilesOf(await db.episode.findUniqueOrThrow({ where: { id: episodeId } }))!)).toHaveLength(7);
    expect(await listTree(webRaw)).toEqual([]);
    expect(await encodeOn(worker, episodeId)).toMatchObject({ frames: 6 });
  });

  it("with the folder store the files stay where they landed and nothing is named", async () => {
    const web = machine("web4");
    const repoId = `folder-${unique()}`;
    const webRaw = rawEpisodeDir(web, actor.orgId, repoId);
    await writeRawEpisode(webRaw, { number: 0, frames: 5, cameras: ["front"] });
    const local = createLocalBlobStore({ root: path.join(tmp, "web4", "blobs") });
    const { episodeId } = await register(web, repoId, 0, local);
    expect((await db.episode.findUniqueOrThrow({ where: { id: episodeId } })).rawFiles).toBeNull();
    expect((await listTree(webRaw)).length).toBe(6);
  });
});
