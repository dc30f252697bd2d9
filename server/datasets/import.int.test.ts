import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { writeRawEpisode } from "../../tests/helpers/edge-episodes";
import { createOrgWithMember } from "../../tests/helpers/factories";
import type { OrgActor } from "../auth/roles";
import { env } from "../env";
import { silentProgress } from "../jobs/progress";
import { commitEpisode } from "./builder.service";
import { datasetDir, rawEpisodeDir } from "./datasets.schemas";
import { deleteEpisode, getDataset, getEpisode, renameTask, restoreEpisode } from "./datasets.service";
import { encodeEpisode } from "./encode.service";
import { parquetBytes } from "./lerobot/parquet";
import { importDatasetFromFolder, runImport } from "./import.service";
import { blobStore } from "../storage/blobs";

// Imports run here without a worker (runImport is what the job calls), so this file needs no
// queue of its own. The fixture is a real LeRobot v3.0 recording whose videos were left out.

const run = promisify(execFile);
const db = testDb();
const FIXTURE = path.resolve("tests/fixtures/so101-record-v3");
let actor: OrgActor;
let importRoot: string;
const unique = () => Math.random().toString(36).slice(2, 8);
const settings = () => ({ ...env(), datasetImportRoots: [importRoot] });

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "operator")).actor;
  importRoot = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-imports-"));
});
afterAll(async () => {
  await db.$disconnect();
  await fs.rm(importRoot, { recursive: true, force: true });
});

async function importFolder(folder: string, repoId: string, progress = silentProgress) {
  const started = await importDatasetFromFolder(db, { actor, input: { path: folder, repoId }, settings: settings() });
  const job = await db.job.findUniqueOrThrow({ where: { id: started.jobId } });
  const payload = job.payload as { datasetId: string; sourceDir: string; removeSource: boolean };
  await db.$executeRaw`SELECT graphile_worker.remove_job(${started.jobId}::text)`;
  const result = await runImport(db, { ...payload, settings: settings(), blobs: blobStore(), progress });
  return { ...started, result, runAgain: () => runImport(db, { ...payload, settings: settings(), blobs: blobStore(), progress }) };
}

const probeFrames = async (file: string) => {
  const { stdout } = await run("ffprobe", ["-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file]);
  return Number(stdout.trim());
};

describe("importing LeRobot datasets", () => {
  it("imports the v3.0 fixture: 4 episodes and their joints, and says its videos are missing", async () => {
    const folder = path.join(importRoot, "so101");
    await fs.cp(FIXTURE, folder, { recursive: true });
    const repoId = `lab/so101-import-${unique()}`;
    const steps: string[] = [];
    const { datasetId, result } = await importFolder(folder, repoId, { ...silentProgress, step: async (name) => void steps.push(name) });
    expect(result).toEqual({ episodes: 4, missingVideos: ["front", "top"], episodesWithoutVideo: [] });
    // The job names the step it is on, episode by episode.
    expect(steps).toEqual(["Reading the dataset", "Importing episode 1 of 4 (373 frames)", "Importing episode 2 of 4 (374 frames)", "Importing episode 3 of 4 (372 frames)", "Importing episode 4 of 4 (373 frames)", "Writing the dataset"]);
    const detail = await getDataset(db, { orgId: actor.orgId, datasetId });
    expect(detail).toMatchObject({ source: "import", importedVersion: "v3.0", fps: 30, robotType: "so101_follower", cameras: ["front", "top"], missingVideos: ["observation.images.front", "observation.images.top"], episodes: { ready: 4 }, totalFrames: 1492 });
    expect(detail.jointNames.action).toEqual(["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]);
    expect(detail.tasks).toEqual([{ text: "Pick the orange cube and place it in the box", episodes: 4 }]);
    expect(detail.episodeList.map((e) => e.length)).toEqual([373, 374, 372, 373]);

    const episode = await getEpisode(db, { orgId: actor.orgId, episodeId: detail.episodeList[1].id, settings: settings(), blobs: blobStore() });
    expect(episode.frames!.state).toHaveLength(374);
    expect(episode.frames!.action[0]).toHaveLength(6);
    expect(episode.videos).toEqual([
      { camera: "front", url: null, width: null, height: null },
      { camera: "top", url: null, width: null, height: null },
    ]);
    // The fixture's first frame, read by an independent reader from the source.
    const source = (await parquetReadObjects({ file: await asyncBufferFromFile(path.join(FIXTURE, "data/chunk-000/file-000.parquet")), rowStart: 373, rowEnd: 374 })) as { action: number[] }[];
    expect(episode.frames!.action[0]).toEqual(source[0].action);

    // The rewritten dataset keeps LeRobot's layout and its features, except the cameras whose
    // videos it does not hold: it declares no file it lacks (the dataset page lists them).
    const root = datasetDir(env(), actor.orgId, repoId);
    const info = JSON.parse(await fs.readFile(path.join(root, "meta/info.json"), "utf8"));
    const original = JSON.parse(await fs.readFile(path.join(FIXTURE, "meta/info.json"), "utf8"));
    const isVideo = (k: string) => k.includes("observation.images.");
    expect(Object.keys(info.features)).toEqual(Object.keys(original.features).filter((k) => !isVideo(k)));
    expect(info).toMatchObject({ total_episodes: 4, total_frames: 1492, total_tasks: 1, robot_type: "so101_follower", video_path: null });
    const episodes = (await parquetReadObjects({ file: await asyncBufferFromFile(path.join(root, "meta/episodes/chunk-000/file-000.parquet")) })) as Record<string, unknown>[];
    const originalEpisodes = (await parquetReadObjects({ file: await asyncBufferFromFile(path.join(FIXTURE, "meta/episodes/chunk-000/file-000.parquet")) })) as Record<string, unknown>[];
    expect(Object.keys(episodes[0])).toEqual(Object.keys(originalEpisodes[0]).filter((k) => !isVideo(k)));
    for (const key of ["dataset_from_index", "dataset_to_index", "length"]) {
      expect(episodes.map((e) => e[key]), key).toEqual(originalEpisodes.map((e) => e[key]));
    }
    // Recomputed from the frames (LeRobot sums in float32, so the last digits differ).
    for (const key of ["stats/action/mean", "stats/action/min", "stats/observation.state/max"]) {
      episodes.forEach((e, i) => (e[key] as number[]).forEach((v, d) => expect(Math.abs(v - (originalEpisodes[i][key] as number[])[d]), key).toBeLessThan(1e-5 * Math.max(1, Math.abs(v)))));
    }
    await expect(fs.stat(path.join(root, "videos"))).rejects.toThrow();
  });

  it("refuses folders outside the import roots and repo ids already taken", async () => {
    await expect(importDatasetFromFolder(db, { actor, input: { path: FIXTURE, repoId: `x-${unique()}` }, settings: settings() })).rejects.toMatchObject({ code: "FORBIDDEN" });
    await expect(importDatasetFromFolder(db, { actor, input: { path: path.join(importRoot, "../../etc"), repoId: `x-${unique()}` }, settings: settings() })).rejects.toMatchObject({ code: expect.stringMatching(/FORBIDDEN|BAD_REQUEST/) });
    const link = path.join(importRoot, "escape");
    await fs.symlink(FIXTURE, link);
    await expect(importDatasetFromFolder(db, { actor, input: { path: link, repoId: `x-${unique()}` }, settings: settings() })).rejects.toMatchObject({ code: "FORBIDDEN" });
    const folder = path.join(importRoot, `so101-${unique()}`);
    await fs.cp(FIXTURE, folder, { recursive: true });
    const repoId = `taken-${unique()}`;
    await importDatasetFromFolder(db, { actor, input: { path: folder, repoId }, settings: settings() });
    await expect(importDatasetFromFolder(db, { actor, input: { path: folder, repoId }, settings: settings() })).rejects.toMatchObject({ code: "CONFLICT" });
  });

  it("round-trips an edge dataset with videos through v3.0 import, and v2.1 with per-episode videos", async () => {
    // An edge dataset, encoded here without a worker.
    const repoId = `edge-${unique()}`;
    const dataset = await db.dataset.create({ data: { orgId: actor.orgId, repoId } });
    for (const [number, frames] of [[0, 15], [1, 10]]) {
      await writeRawEpisode(rawEpisodeDir(env(), actor.orgId, repoId), { number, frames });
      const e = await db.episode.create({ data: { orgId: actor.orgId, datasetId: dataset.id, number, mode: "edge", task: `task ${number}` } });
      await encodeEpisode(db, { episodeId: e.id, settings: env(), progress: silentProgress, blobs: blobStore(), isLastAttempt: true, commit: (d, episodeId) => commitEpisode(d, { episodeId, blobs: blobStore(), settings: env() }) });
    }
    const copy = path.join(importRoot, `edge-copy-${unique()}`);
    await fs.cp(datasetDir(env(), actor.orgId, repoId), copy, { recursive: true, dereference: true });
    const imported = await importFolder(copy, `reimport-${unique()}`);
    expect(imported.result).toEqual({ episodes: 2, missingVideos: [], episodesWithoutVideo: [] });
    // The job run again, as after a worker killed once the import was done but before the job said so: it stands.
    const episodesBefore = await db.episode.findMany({ where: { datasetId: imported.datasetId }, orderBy: { number: "asc" } });
    expect(await imported.runAgain()).toEqual(imported.result);
    expect(await db.episode.findMany({ where: { datasetId: imported.datasetId }, orderBy: { number: "asc" } })).toEqual(episodesBefore);
    const detail = await getDataset(db, { orgId: actor.orgId, datasetId: imported.datasetId });
    expect(detail.episodeList.map((e) => [e.length, e.task, e.cameras])).toEqual([[15, "task 0", ["front", "wrist"]], [10, "task 1", ["front", "wrist"]]]);
    const second = await getEpisode(db, { orgId: actor.orgId, episodeId: detail.episodeList[1].id, settings: env(), blobs: blobStore() });
    expect(second.videos[0].url).toMatch(/\/video\/front$/);
    const importedRoot = datasetDir(env(), actor.orgId, `${detail.repoId}`);
    expect(await probeFrames(path.join(importedRoot, "videos/observation.images.wrist/chunk-000/file-000.mp4"))).toBe(25);

    // v2.1: one parquet and one MP4 per episode, tasks and episodes in JSON lines.
    const v21 = path.join(importRoot, `v21-${unique()}`);
    await fs.mkdir(path.join(v21, "meta"), { recursive: true });
    const features = {
      action: { dtype: "float32", shape: [2], names: { motors: ["a", "b"] } },
      "observation.state": { dtype: "float32", shape: [2], names: { motors: ["a", "b"] } },
      "observation.images.cam": { dtype: "video", shape: [48, 64, 3], names: ["height", "width", "channel"] },
      timestamp: { dtype: "float32", shape: [1], names: null },
      frame_index: { dtype: "int64", shape: [1], names: null },
      episode_index: { dtype: "int64", shape: [1], names: null },
      index: { dtype: "int64", shape: [1], names: null },
      task_index: { dtype: "int64", shape: [1], names: null },
    };
    await fs.writeFile(path.join(v21, "meta/info.json"), JSON.stringify({ codebase_version: "v2.1", robot_type: "koch", fps: 10, chunks_size: 1000, data_path: "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet", video_path: "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4", features }));
    await fs.writeFile(path.join(v21, "meta/episodes.jsonl"), [0, 1].map((i) => JSON.stringify({ episode_index: i, tasks: ["Stack"], length: 8 })).join("\n"));
    await fs.writeFile(path.join(v21, "meta/tasks.jsonl"), JSON.stringify({ task_index: 0, task: "Stack" }));
    for (const i of [0, 1]) {
      await fs.mkdir(path.join(v21, "data/chunk-000"), { recursive: true });
      const n = 8;
      await fs.writeFile(
        path.join(v21, `data/chunk-000/episode_00000${i}.parquet`),
        parquetBytes([
          { name: "action", leaf: "FLOAT", depth: 1, data: Array.from({ length: n }, (_, f) => [f, -f]) },
          { name: "observation.state", leaf: "FLOAT", depth: 1, data: Array.from({ length: n }, (_, f) => [f + 0.5, i]) },
          { name: "timestamp", leaf: "FLOAT", depth: 0, data: Array.from({ length: n }, (_, f) => f / 10) },
          { name: "frame_index", leaf: "INT64", depth: 0, data: Array.from({ length: n }, (_, f) => f) },
          { name: "episode_index", leaf: "INT64", depth: 0, data: Array.from({ length: n }, () => i) },
          { name: "index", leaf: "INT64", depth: 0, data: Array.from({ length: n }, (_, f) => i * n + f) },
          { name: "task_index", leaf: "INT64", depth: 0, data: Array.from({ length: n }, () => 0) },
        ]),
      );
      const video = path.join(v21, `videos/chunk-000/observation.images.cam/episode_00000${i}.mp4`);
      await fs.mkdir(path.dirname(video), { recursive: true });
      await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "8", "-c:v", "libx264", "-pix_fmt", "yuv420p", video]);
    }
    const old = await importFolder(v21, `v21-${unique()}`);
    expect(old.result).toEqual({ episodes: 2, missingVideos: [], episodesWithoutVideo: [] });
    const oldDetail = await getDataset(db, { orgId: actor.orgId, datasetId: old.datasetId });
    expect(oldDetail).toMatchObject({ importedVersion: "v2.1", fps: 10, cameras: ["cam"], totalFrames: 16, jointNames: { action: ["a", "b"] } });
    const oldRoot = datasetDir(env(), actor.orgId, oldDetail.repoId);
    const info = JSON.parse(await fs.readFile(path.join(oldRoot, "meta/info.json"), "utf8"));
    expect(info).toMatchObject({ codebase_version: "v3.0", total_episodes: 2, total_frames: 16 });
    expect(await probeFrames(path.join(oldRoot, "videos/observation.images.cam/chunk-000/file-000.mp4"))).toBe(16);
  }, 120_000);

  it("deletes and restores an episode and renames a task, rewriting the dataset each time", async () => {
    const folder = path.join(importRoot, `edit-${unique()}`);
    await fs.cp(FIXTURE, folder, { recursive: true });
    const repoId = `edit-${unique()}`;
    const { datasetId } = await importFolder(folder, repoId);
    const root = datasetDir(env(), actor.orgId, repoId);
    const readInfo = async () => JSON.parse(await fs.readFile(path.join(root, "meta/info.json"), "utf8"));
    const before = await getDataset(db, { orgId: actor.orgId, datasetId });
    const second = before.episodeList[1];
    await deleteEpisode(db, { actor, episodeId: second.id, settings: env(), blobs: blobStore() });
    expect(await readInfo()).toMatchObject({ total_episodes: 3, total_frames: 1492 - 374, splits: { train: "0:3" } });
    const data = (await parquetReadObjects({ file: await asyncBufferFromFile(path.join(root, "data/chunk-000/file-000.parquet")), columns: ["episode_index", "index"] })) as { episode_index: bigint; index: bigint }[];
    expect([...new Set(data.map((r) => Number(r.episode_index)))]).toEqual([0, 1, 2]);
    expect(data.map((r) => Number(r.index))).toEqual(data.map((_, i) => i));
    const deleted = await getDataset(db, { orgId: actor.orgId, datasetId });
    expect(deleted.episodes).toMatchObject({ ready: 3, deleted: 1 });
    // Only the link moved: the build it points at is complete, and old builds are gone.
    const builds = (await fs.readdir(path.join(env().DATASETS_DIR, ".store", datasetId, "builds"))).filter((b) => !b.endsWith(".manifest.json"));
    expect(builds).toHaveLength(1);
    expect(path.basename(await fs.readlink(root))).toBe(builds[0]);

    await restoreEpisode(db, { actor, episodeId: second.id, settings: env(), blobs: blobStore() });
    const restored = await getDataset(db, { orgId: actor.orgId, datasetId });
    expect(restored.episodeList.map((e) => [e.id, e.datasetIndex])).toEqual(before.episodeList.map((e) => [e.id, e.datasetIndex]));
    expect(await readInfo()).toMatchObject({ total_episodes: 4, total_frames: 1492 });

    await renameTask(db, { actor, input: { datasetId, from: "Pick the orange cube and place it in the box", to: "Pick the orange cube" }, settings: env(), blobs: blobStore() });
    const tasks = (await parquetReadObjects({ file: await asyncBufferFromFile(path.join(root, "meta/tasks.parquet")) })) as Record<string, unknown>[];
    expect(tasks).toEqual([{ task_index: 0n, __index_level_0__: "Pick the orange cube" }]);
    await expect(renameTask(db, { actor, input: { datasetId, from: "nope", to: "x" }, settings: env(), blobs: blobStore() })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await readInfo()).toMatchObject({ total_episodes: 4 });
  });
});
