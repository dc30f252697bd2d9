import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import importTask from "../../worker/tasks/datasets/import";
import { POST as uploadArchive } from "../../app/api/datasets/import/route";
import { testDb } from "../../tests/helpers/db";
import { JOINTS } from "../../tests/helpers/edge-episodes";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { writeV3Dataset } from "../../tests/helpers/lerobot-datasets";
import type { OrgActor } from "../auth/roles";
import { createApiToken } from "../auth/tokens.service";
import { env } from "../env";
import { CancellationRegistry } from "../jobs/cancellation";
import { importDatasetJob } from "../jobs/catalog";
import { silentProgress } from "../jobs/progress";
import { runJob } from "../jobs/run";
import { exportDataset } from "./archive.service";
import { datasetDir } from "./datasets.schemas";
import { getDataset, getEpisode, listDatasets } from "./datasets.service";
import { importDatasetFromFolder, inspectDataset, runImport } from "./import.service";
import { importStaged } from "./upload-import.service";
import { blobStore } from "../storage/blobs";

// Datasets made by other people: features named otherwise than LeRobot's recorder names them
// (`actions`, `state`, a camera called `image`), episodes whose MP4s are missing, files cut
// short. Generated here, and the real fixture where it applies.

const run = promisify(execFile);
const db = testDb();
const FIXTURE = path.resolve("tests/fixtures/so101-record-v3");
let actor: OrgActor;
let token: string;
let importRoot: string;
const unique = () => Math.random().toString(36).slice(2, 8);
const settings = () => ({ ...env(), datasetImportRoots: [importRoot] });

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "operator")).actor;
  token = (await createApiToken(db, { actor, input: { name: "imports", scopes: ["write"] } })).token;
  importRoot = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-import-features-"));
});
afterAll(async () => {
  await db.$disconnect();
  await fs.rm(importRoot, { recursive: true, force: true });
});

/** Starts an import as the page does and runs its job here, as the worker would (no queue). */
async function importFolder(folder: string, repoId: string, mapping?: { action: string; state: string; cameras?: string[] }) {
  const started = await importDatasetFromFolder(db, { actor, input: { path: folder, repoId, mapping }, settings: settings() });
  return { ...started, result: await runQueued(started.jobId) };
}

async function runQueued(jobId: string) {
  const job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
  await db.$executeRaw`SELECT graphile_worker.remove_job(${jobId}::text)`;
  const payload = importDatasetJob.payload.parse(job.payload);
  return runImport(db, { ...payload, settings: settings(), blobs: blobStore(), progress: silentProgress });
}

const readRows = async (file: string) => (await parquetReadObjects({ file: await asyncBufferFromFile(file) })) as Record<string, unknown>[];
const probeFrames = async (file: string) => {
  const { stdout } = await run("ffprobe", ["-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file]);
  return Number(stdout.trim());
};

/** Every file a LeRobot v3.0 dataset's meta declares: its data files and each camera's video files. */
async function declaredFiles(root: string): Promise<string[]> {
  const info = JSON.parse(await fs.readFile(path.join(root, "meta/info.json"), "utf8"));
  const pad = (n: unknown) => String(Number(n)).padStart(3, "0");
  const files = new Set<string>();
  for (const e of await readRows(path.join(root, "meta/episodes/chunk-000/file-000.parquet"))) {
    files.add(`data/chunk-${pad(e["data/chunk_index"])}/file-${pad(e["data/file_index"])}.parquet`);
    for (const key of Object.keys(info.features).filter((k) => info.features[k].dtype === "video")) {
      files.add(`videos/${key}/chunk-${pad(e[`videos/${key}/chunk_index`])}/file-${pad(e[`videos/${key}/file_index`])}.mp4`);
    }
  }
  return [...files].sort();
}

async function exportTo(datasetId: string): Promise<string> {
  const { stream } = await exportDataset(db, { orgId: actor.orgId, datasetId, settings: env(), blobs: blobStore() });
  const archive = path.join(importRoot, `export-${unique()}.tar.gz`);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  await fs.writeFile(archive, Buffer.concat(chunks));
  const out = path.join(importRoot, `export-${unique()}`);
  await fs.mkdir(out);
  await run("tar", ["-xzf", archive, "-C", out]);
  return path.join(out, (await fs.readdir(out))[0]);
}

async function missingFrom(root: string): Promise<string[]> {
  const missing: string[] = [];
  for (const rel of await declaredFiles(root)) if (!(await fs.stat(path.join(root, rel)).then(() => true, () => false))) missing.push(rel);
  return missing;
}

describe("features named otherwise", () => {
  it("imports `actions`, `state` and a camera named `image`, and keeps those names in the dataset it writes", async () => {
    const folder = path.join(importRoot, `renamed-${unique()}`);
    await writeV3Dataset(folder, {
      actionKey: "actions",
      stateKey: "state",
      videoKeys: ["image"],
      episodes: 3,
      frames: 12,
      extra: { "next.reward": { dtype: "float32", shape: [1] }, "observation.environment_state": { dtype: "float32", shape: [3] } },
    });
    const inspection = await inspectDataset(folder);
    expect(inspection.proposed).toEqual({ action: "actions", state: "state", cameras: ["image"] });
    expect(inspection.needsConfirmation).toBe(true);
    expect(inspection.candidates.action[0]).toBe("actions");
    expect(inspection.dropped).toEqual([{ key: "observation.environment_state", reason: expect.stringMatching(/^float32 of shape \[3\]/) }]);

    const repoId = `lab/renamed-${unique()}`;
    const { datasetId, result } = await importFolder(folder, repoId);
    expect(result).toEqual({ episodes: 3, missingVideos: [], episodesWithoutVideo: [] });
    const detail = await getDataset(db, { orgId: actor.orgId, datasetId });
    expect(detail).toMatchObject({ cameras: ["image"], missingVideos: [], episodesWithoutVideo: [], importStatus: "imported", episodes: { ready: 3 }, totalFrames: 36 });
    expect(detail.jointNames).toEqual({ action: JOINTS, state: JOINTS });
    expect(detail.featureMap).toEqual({ action: "actions", state: "state", cameras: [{ camera: "image", key: "image" }], dropped: inspection.dropped });
    const episode = await getEpisode(db, { orgId: actor.orgId, episodeId: detail.episodeList[2].id, settings: env(), blobs: blobStore() });
    expect(episode.videos).toEqual([{ camera: "image", url: expect.stringMatching(/\/video\/image$/), width: 64, height: 48 }]);
    expect(episode.frames!.action[0]).toHaveLength(6);

    const root = datasetDir(env(), actor.orgId, repoId);
    const info = JSON.parse(await fs.readFile(path.join(root, "meta/info.json"), "utf8"));
    expect(Object.keys(info.features)).toEqual(["actions", "state", "next.reward", "image", "timestamp", "frame_index", "episode_index", "index", "task_index"]);
    expect(info.features.actions.names).toEqual(JOINTS);
    expect(Object.keys((await readRows(path.join(root, "data/chunk-000/file-000.parquet")))[0])).toEqual(["actions", "state", "next.reward", "timestamp", "frame_index", "episode_index", "index", "task_index"]);
    expect(await probeFrames(path.join(root, "videos/image/chunk-000/file-000.mp4"))).toBe(36);
    expect(await missingFrom(root)).toEqual([]);
  }, 120_000);

  it("names the features it found when it cannot tell, and takes the mapping a person gives", async () => {
    const folder = path.join(importRoot, `unclear-${unique()}`);
    await writeV3Dataset(folder, { actionKey: "left_arm", stateKey: "right_arm", episodes: 2, frames: 5 });
    const inspection = await inspectDataset(folder);
    expect(inspection.proposed).toEqual({ action: null, state: null, cameras: [] });
    expect(inspection.candidates).toEqual({ action: ["left_arm", "right_arm"], state: ["left_arm", "right_arm"] });
    await expect(importDatasetFromFolder(db, { actor, input: { path: folder, repoId: `unclear-${unique()}` }, settings: settings() })).rejects.toThrow(
      /^Gantry could not tell which feature is the dataset's action and state\. Features found: left_arm \(float32 \[6\]\), right_arm \(float32 \[6\]\)/,
    );
    await expect(importDatasetFromFolder(db, { actor, input: { path: folder, repoId: `unclear-${unique()}`, mapping: { action: "timestamp", state: "right_arm" } }, settings: settings() })).rejects.toThrow(
      /^Feature timestamp cannot be the action: it is LeRobot's per-frame bookkeeping; choose a vector of floats, one per joint/,
    );
    await expect(importDatasetFromFolder(db, { actor, input: { path: folder, repoId: `unclear-${unique()}`, mapping: { action: "left_arm", state: "right_arm", cameras: ["left_arm"] } }, settings: settings() })).rejects.toThrow(
      /left_arm is not a video feature/,
    );
    // Refused before anything was created.
    expect((await listDatasets(db, { orgId: actor.orgId })).some((d) => d.repoId.startsWith("unclear-"))).toBe(false);
    const { datasetId } = await importFolder(folder, `unclear-${unique()}`, { action: "left_arm", state: "right_arm" });
    expect((await getDataset(db, { orgId: actor.orgId, datasetId })).featureMap).toMatchObject({ action: "left_arm", state: "right_arm" });
  });

  it("stages an upload whose features need confirming, and imports it once confirmed; one that names them goes at once", async () => {
    const folder = path.join(importRoot, `upload-${unique()}`);
    await writeV3Dataset(folder, { actionKey: "actions", stateKey: "state", episodes: 2, frames: 5 });
    const archive = path.join(importRoot, `upload-${unique()}.tar.gz`);
    await run("tar", ["-czf", archive, "-C", path.dirname(folder), path.basename(folder)]);
    const post = async (query: Record<string, string>) => {
      const body = await fs.readFile(archive);
      return uploadArchive(new Request(`http://localhost/api/datasets/import?${new URLSearchParams(query)}`, { method: "POST", body, headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream", "content-length": String(body.length) } }));
    };

    const repoId = `staged-${unique()}`;
    const staged = await post({ repoId });
    expect(staged.status).toBe(202);
    const { staged: waiting } = await staged.json();
    expect(waiting.inspection.proposed).toEqual({ action: "actions", state: "state", cameras: [] });
    expect(await db.dataset.count({ where: { orgId: actor.orgId, repoId } })).toBe(0);
    const started = await importStaged(db, { actor, input: { stagingId: waiting.stagingId, repoId, mapping: { action: "actions", state: "state" } }, settings: settings(), blobs: blobStore() });
    expect((await runQueued(started.jobId)).episodes).toBe(2);
    await expect(importStaged(db, { actor, input: { stagingId: waiting.stagingId, repoId: `again-${unique()}`, mapping: { action: "actions", state: "state" } }, settings: settings(), blobs: blobStore() })).rejects.toMatchObject({ code: "NOT_FOUND" });

    const direct = await post({ repoId: `direct-${unique()}`, action: "actions", state: "state" });
    expect(direct.status).toBe(201);
    expect((await runQueued((await direct.json()).jobId)).episodes).toBe(2);
  });
});

describe("episodes whose videos are missing", () => {
  it("imports every episode, flags the ones without their MP4 by number, and exports only files it holds", async () => {
    const folder = path.join(importRoot, `gaps-${unique()}`);
    await writeV3Dataset(folder, { actionKey: "actions", stateKey: "state", videoKeys: ["image"], episodes: 6, frames: 8, withoutVideo: [1, 4] });
    const { datasetId, result } = await importFolder(folder, `gaps-${unique()}`, { action: "actions", state: "state" });
    expect(result).toEqual({ episodes: 6, missingVideos: [], episodesWithoutVideo: [1, 4] });
    const detail = await getDataset(db, { orgId: actor.orgId, datasetId });
    expect(detail).toMatchObject({ cameras: ["image"], episodesWithoutVideo: [1, 4], episodes: { ready: 6 }, totalFrames: 48 });
    expect(detail.episodeList.map((e) => [e.number, e.missingVideos, e.datasetIndex])).toEqual([
      [0, [], 0],
      [2, [], 1],
      [3, [], 2],
      [5, [], 3],
      [1, ["image"], null],
      [4, ["image"], null],
    ]);
    const gap = await getEpisode(db, { orgId: actor.orgId, episodeId: detail.episodeList.find((e) => e.number === 4)!.id, settings: env(), blobs: blobStore() });
    expect(gap.episode.missingVideos).toEqual(["image"]);
    expect(gap.videos).toEqual([{ camera: "image", url: null, width: null, height: null }]);
    expect(gap.frames!.state).toHaveLength(8);

    const exported = await exportTo(datasetId);
    expect(await missingFrom(exported)).toEqual([]);
    const info = JSON.parse(await fs.readFile(path.join(exported, "meta/info.json"), "utf8"));
    expect(info).toMatchObject({ total_episodes: 4, total_frames: 32 });
    expect(await probeFrames(path.join(exported, "videos/image/chunk-000/file-000.mp4"))).toBe(32);
  }, 120_000);

  it("exports the fixture, whose videos were left out, without declaring a video file", async () => {
    const folder = path.join(importRoot, `so101-${unique()}`);
    await fs.cp(FIXTURE, folder, { recursive: true });
    const { datasetId } = await importFolder(folder, `so101-${unique()}`);
    const exported = await exportTo(datasetId);
    expect(await declaredFiles(exported)).toEqual(["data/chunk-000/file-000.parquet"]);
    expect(await missingFrom(exported)).toEqual([]);
    const detail = await getDataset(db, { orgId: actor.orgId, datasetId });
    expect(detail).toMatchObject({ cameras: ["front", "top"], missingVideos: ["observation.images.front", "observation.images.top"] });
  });
});

describe("imports that fail", () => {
  it("names a parquet file cut short, fails once without retrying, leaves no episodes, and frees its repo id", async () => {
    const folder = path.join(importRoot, `cut-${unique()}`);
    await fs.cp(FIXTURE, folder, { recursive: true });
    const data = path.join(folder, "data/chunk-000/file-000.parquet");
    const bytes = await fs.readFile(data);
    await fs.writeFile(data, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const repoId = `cut-${unique()}`;
    const started = await importDatasetFromFolder(db, { actor, input: { path: folder, repoId }, settings: settings() });
    await db.$executeRaw`SELECT graphile_worker.remove_job(${started.jobId}::text)`;
    // runJob throws only when the queue should try again.
    await runJob({ db, def: importDatasetJob, jobId: started.jobId, attempt: 1, cancellations: new CancellationRegistry(), handler: importTask.handler });
    const job = await db.job.findUniqueOrThrow({ where: { id: started.jobId } });
    expect(job).toMatchObject({ status: "failed", attempts: 1 });
    expect(job.error).toMatch(/^data\/chunk-000\/file-000\.parquet is cut short or damaged: it does not end as a parquet file does \(.*\)\. Copy or upload the dataset again/);

    const failed = await getDataset(db, { orgId: actor.orgId, datasetId: started.datasetId });
    expect(failed).toMatchObject({ importStatus: "failed", importError: job.error, episodes: { ready: 0, encoding: 0, failed: 0 }, episodeList: [] });
    expect((await listDatasets(db, { orgId: actor.orgId })).find((d) => d.id === started.datasetId)?.importStatus).toBe("failed");

    // The same repo id, the file whole again: the failed import makes way.
    await fs.writeFile(data, bytes);
    const again = await importFolder(folder, repoId);
    expect(again.result.episodes).toBe(4);
    expect(await db.dataset.findUnique({ where: { id: started.datasetId } })).toBeNull();
  });

  it("answers 409 for a repo id already taken before reading the upload", async () => {
    const repoId = `taken-${unique()}`;
    await db.dataset.create({ data: { orgId: actor.orgId, repoId } });
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(64 * 1024));
      },
    });
    const res = await uploadArchive(
      new Request(`http://localhost/api/datasets/import?repoId=${repoId}`, { method: "POST", body, headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream", "content-length": String(117 * 1024 ** 2) }, duplex: "half" } as RequestInit),
    );
    expect(res.status).toBe(409);
    expect((await res.json()).error.message).toBe(`Your organisation already has a dataset named ${repoId}; choose another repo id`);
    expect(pulled).toBeLessThanOrEqual(1);
  });
});
