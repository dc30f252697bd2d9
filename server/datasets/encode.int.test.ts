import crypto from "node:crypto";
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from "hyparquet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeRawEpisode } from "../../tests/helpers/edge-episodes";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { startWorker, type StartedWorker } from "../../worker/worker";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { silentProgress } from "../jobs/progress";
import { commitEpisode } from "./builder.service";
import { datasetDir, rawEpisodeDir } from "./datasets.schemas";
import { mediaTools } from "../media/ffmpeg";
import { encodeCamera, encodeEpisode, encodeSettingsFrom } from "./encode.service";
import { getIngestStatus, registerRawEpisode } from "./ingest.service";
import { blobStore } from "../storage/blobs";
import { episodeFilesOf } from "./episode-files";

// The encoding job through a real worker and real ffmpeg/ffprobe, on a database of its own so
// no other test file's worker takes these jobs. Written parquet is read back with hyparquet.

const run = promisify(execFile);
let database: TestDatabase;
let db: Db;
let worker: StartedWorker;
let actor: OrgActor;
const unique = () => Math.random().toString(36).slice(2, 8);

beforeAll(async () => {
  database = await createTestDatabase("datasets");
  db = createDb(database.url, 4);
  worker = await startWorker({ url: database.url, concurrency: 2, log: () => {} });
  actor = (await createOrgWithMember(db, "operator")).actor;
});
afterAll(async () => {
  await worker?.stop();
  await db?.$disconnect();
  await database?.drop();
});

const settled = (episodeId: string) =>
  waitFor(
    async () => {
      const e = await db.episode.findUniqueOrThrow({ where: { id: episodeId } });
      const job = e.jobId ? await db.job.findUnique({ where: { id: e.jobId } }) : null;
      return e.status !== "encoding" && job && ["succeeded", "failed", "cancelled"].includes(job.status) ? { e, job } : null;
    },
    { timeoutMs: 90_000, what: "the episode to settle" },
  );

async function readParquet(file: string) {
  const buffer = await asyncBufferFromFile(file);
  const metadata = await parquetMetadataAsync(buffer);
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  const rows = (await parquetReadObjects({ file: buffer })) as Record<string, unknown>[];
  return { rows, columns, metadata };
}

async function probeFrames(file: string): Promise<{ frames: number; duration: number; codec: string }> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames,codec_name:format=duration", "-of", "json", file]);
  const j = JSON.parse(stdout);
  return { frames: Number(j.streams[0].nb_read_frames), duration: Number(j.format.duration), codec: j.streams[0].codec_name };
}

const register = (repoId: string, episodeIndex: number, task = "Pick the cube") => registerRawEpisode(db, { orgId: actor.orgId, createdById: actor.userId, repoId, episodeIndex, task, mode: "edge" });

describe("encoding episodes into a LeRobot v3.0 dataset", () => {
  it("encodes two episodes of two cameras, appends them, and writes LeRobot's layout", async () => {
    const repoId = `lab/so101-${unique()}`;
    const raw = rawEpisodeDir(env(), actor.orgId, repoId);
    await writeRawEpisode(raw, { number: 0, frames: 30, fps: 30 });
    await writeRawEpisode(raw, { number: 1, frames: 21, fps: 30, pad: 6 });
    const a = await register(repoId, 0);
    const first = await settled(a.episodeId);
    expect(first.job.status).toBe("succeeded");
    const b = await register(repoId, 1, "Place the cube");
    const second = await settled(b.episodeId);
    expect(second.job.status).toBe("succeeded");
    expect([first.e, second.e].map((e) => [e.status, e.datasetIndex, e.length, e.fps, e.cameras])).toEqual([
      ["ready", 0, 30, 30, ["front", "wrist"]],
      ["ready", 1, 21, 30, ["front", "wrist"]],
    ]);
    // Progress came from ffmpeg's frame counter, and the raw files are gone once committed.
    const events = await db.jobEvent.findMany({ where: { jobId: a.jobId! }, orderBy: { seq: "asc" } });
    expect(events.some((e) => /Encoding 2 cameras \(libx264, 30 frames at 30 fps\)/.test(e.message))).toBe(true);
    await expect(fs.stat(path.join(raw, "images/front/episode-0"))).rejects.toThrow();
    await expect(fs.stat(path.join(raw, "data/episode-0.jsonl"))).rejects.toThrow();
    expect(await getIngestStatus(db, { orgId: actor.orgId, repoId })).toMatchObject({ status: "COMPLETED", progress: 1, episodes: { total: 2, encoded: 2, failed: 0 } });

    const root = datasetDir(env(), actor.orgId, repoId);
    const info = JSON.parse(await fs.readFile(path.join(root, "meta/info.json"), "utf8"));
    expect(Object.keys(info)).toEqual(["codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path", "features"]);
    expect(info).toMatchObject({ codebase_version: "v3.0", total_episodes: 2, total_frames: 51, total_tasks: 2, chunks_size: 1000, fps: 30, splits: { train: "0:2" } });
    expect(Object.keys(info.features)).toEqual(["action", "observation.state", "observation.images.front", "observation.images.wrist", "timestamp", "frame_index", "episode_index", "index", "task_index"]);
    expect(info.features["observation.images.front"]).toMatchObject({ dtype: "video", shape: [48, 64, 3], info: { "video.codec": "h264", "video.pix_fmt": "yuv420p", "video.fps": 30 } });

    // Each episode was committed on its own, and an append never rewrites a file: the second
    // episode's rows and video are in files of their own.
    const data = await readParquet(path.join(root, "data/chunk-000/file-000.parquet"));
    expect(data.columns).toEqual(["action", "observation.state", "timestamp", "frame_index", "episode_index", "index", "task_index"]);
    expect(data.metadata.row_groups.map((g) => Number(g.num_rows))).toEqual([30]);
    const appended = await readParquet(path.join(root, "data/chunk-000/file-001.parquet"));
    expect(appended.rows).toHaveLength(21);
    expect(appended.rows[0]).toMatchObject({ frame_index: 0n, episode_index: 1n, index: 30n, task_index: 1n });
    expect(appended.rows[20].timestamp).toBeCloseTo(20 / 30, 5);
    expect((data.rows[0].action as number[]).length).toBe(6);
    const schemaTypes = Object.fromEntries(parquetSchema(data.metadata).children.map((c) => [c.element.name, c.children.length ? c.children[0].children[0].element.type : c.element.type]));
    expect(schemaTypes).toEqual({ action: "FLOAT", "observation.state": "FLOAT", timestamp: "FLOAT", frame_index: "INT64", episode_index: "INT64", index: "INT64", task_index: "INT64" });

    const episodes = await readParquet(path.join(root, "meta/episodes/chunk-000/file-000.parquet"));
    expect(episodes.columns.slice(0, 11)).toEqual(["episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index", "videos/observation.images.front/chunk_index", "videos/observation.images.front/file_index", "videos/observation.images.front/from_timestamp", "videos/observation.images.front/to_timestamp"]);
    expect(episodes.columns.at(-1)).toBe("meta/episodes/file_index");
    expect(episodes.columns).toContain("stats/observation.images.wrist/q99");
    expect(episodes.rows[1]).toMatchObject({ episode_index: 1n, tasks: ["Place the cube"], length: 21n, "data/file_index": 1n, dataset_from_index: 30n, dataset_to_index: 51n, "videos/observation.images.front/file_index": 1n, "videos/observation.images.front/from_timestamp": 0, "stats/action/count": [21n] });
    expect(episodes.rows[1]["videos/observation.images.front/to_timestamp"]).toBeCloseTo(21 / 30, 9);
    expect((episodes.rows[0]["stats/observation.images.front/mean"] as number[][][]).map((c) => c[0].length)).toEqual([1, 1, 1]);

    const tasks = await readParquet(path.join(root, "meta/tasks.parquet"));
    expect(tasks.rows).toEqual([{ task_index: 0n, __index_level_0__: "Pick the cube" }, { task_index: 1n, __index_level_0__: "Place the cube" }]);
    const stats = JSON.parse(await fs.readFile(path.join(root, "meta/stats.json"), "utf8"));
    expect(stats.action.count).toEqual([51]);
    expect(Object.keys(stats.action)).toEqual(["min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"]);
    expect(stats.frame_index).toMatchObject({ min: [0], max: [29] });

    for (const camera of ["front", "wrist"]) {
      for (const [file, frames] of [["file-000", 30], ["file-001", 21]] as const) {
        const video = await probeFrames(path.join(root, `videos/observation.images.${camera}/chunk-000/${file}.mp4`));
        expect(video).toMatchObject({ frames, codec: "h264" });
        expect(video.duration).toBeCloseTo(frames / 30, 1);
      }
    }
  }, 120_000);

  it("fails an episode with a corrupt or missing frame, naming it, and leaves the others alone", async () => {
    const repoId = `broken-${unique()}`;
    const raw = rawEpisodeDir(env(), actor.orgId, repoId);
    await writeRawEpisode(raw, { number: 0, frames: 12 });
    await writeRawEpisode(raw, { number: 1, frames: 12 });
    await writeRawEpisode(raw, { number: 2, frames: 12 });
    const frame = path.join(raw, "images/wrist/episode-0/frame-7.png");
    const bytes = await fs.readFile(frame);
    await fs.writeFile(frame, bytes.subarray(0, bytes.length - 30));
    await fs.rm(path.join(raw, "images/front/episode-1/frame-4.png"));
    // A flipped byte inside a frame, which ffmpeg would otherwise conceal.
    await writeRawEpisode(raw, { number: 3, frames: 12, cameras: ["front"] });
    const flipped = path.join(raw, "images/front/episode-3/frame-5.png");
    const flip = await fs.readFile(flipped);
    flip[Math.floor(flip.length / 2)] ^= 0x55;
    await fs.writeFile(flipped, flip);
    const [bad, gap, good, damaged] = await Promise.all([register(repoId, 0), register(repoId, 1), register(repoId, 2), register(repoId, 3)]);
    const [badDone, gapDone, goodDone, damagedDone] = await Promise.all([settled(bad.episodeId), settled(gap.episodeId), settled(good.episodeId), settled(damaged.episodeId)]);
    expect(damagedDone.e.error).toMatch(/Camera front: frame 5 \(frame-5\.png\) is corrupt \(bad checksum in its IDAT chunk\)/);
    expect(badDone.e).toMatchObject({ status: "failed" });
    expect(badDone.e.error).toMatch(/Camera wrist: frame 7 \(frame-7\.png\) is cut short/);
    expect(gapDone.e.error).toMatch(/Camera front: frame 4 is missing/);
    expect(badDone.job).toMatchObject({ status: "failed", attempts: 1 });
    expect(goodDone.e).toMatchObject({ status: "ready", datasetIndex: 0 });
    const status = await getIngestStatus(db, { orgId: actor.orgId, repoId });
    expect(status).toMatchObject({ status: "FAILED", episodes: { total: 4, encoded: 1, failed: 3 } });
    // The raw frames of a failed episode stay, so it can be fixed and retried.
    await expect(fs.stat(path.join(raw, "images/front/episode-0/frame-0.png"))).resolves.toBeTruthy();
  }, 120_000);

  it("keeps the recorder's order when a later episode finishes encoding first", async () => {
    const repoId = `lab/order-${unique()}`;
    const raw = rawEpisodeDir(env(), actor.orgId, repoId);
    await writeRawEpisode(raw, { number: 0, frames: 25, fps: 30 });
    await writeRawEpisode(raw, { number: 1, frames: 15, fps: 30 });
    const later = await register(repoId, 1);
    expect((await settled(later.episodeId)).e.datasetIndex).toBe(0);
    const earlier = await register(repoId, 0);
    await settled(earlier.episodeId);
    const episodes = await db.episode.findMany({ where: { dataset: { repoId } }, orderBy: { number: "asc" } });
    expect(episodes.map((e) => [e.number, e.datasetIndex, e.length])).toEqual([
      [0, 0, 25],
      [1, 1, 15],
    ]);
    const { rows } = await readParquet(path.join(datasetDir(env(), actor.orgId, repoId), "meta/episodes/chunk-000/file-000.parquet"));
    expect(rows.map((r) => [Number(r.episode_index), Number(r.length)])).toEqual([
      [0, 25],
      [1, 15],
    ]);
  }, 120_000);

  it("survives being stopped mid-encode and after encoding: one episode, nothing lost", async () => {
    const repoId = `crash-${unique()}`;
    const raw = rawEpisodeDir(env(), actor.orgId, repoId);
    await writeRawEpisode(raw, { number: 0, frames: 240, size: "320x240" });
    // Recorded without a job, so only this test runs the encoding (as a worker would, twice).
    const dataset = await db.dataset.create({ data: { orgId: actor.orgId, repoId } });
    const r = { episodeId: (await db.episode.create({ data: { orgId: actor.orgId, datasetId: dataset.id, number: 0, mode: "edge", cameras: ["front", "wrist"] } })).id };
    const settings = env();
    const stop = new AbortController();
    let commits = 0;
    const commit = async (d: Db, episodeId: string) => {
      commits++;
      await commitEpisode(d, { episodeId, blobs: blobStore(), settings });
    };
    const first = encodeEpisode(db, {
      episodeId: r.episodeId,
      settings,
      progress: silentProgress,
      blobs: blobStore(),
      signal: stop.signal,
      isLastAttempt: false,
      commit,
    });
    // Stopped as soon as ffmpeg has begun writing a camera's video (its temporary file appears).
    const storeOf = path.join(settings.DATASETS_DIR, ".store", dataset.id, "episodes", r.episodeId);
    const watching = setInterval(() => {
      fs.readdir(storeOf).then(
        (names) => names.some((n) => n.endsWith(".tmp")) && stop.abort(new Error("worker killed")),
        () => {},
      );
    }, 2);
    await expect(first.finally(() => clearInterval(watching))).rejects.toThrow(/worker killed/);
    expect(commits).toBe(0);
    expect((await db.episode.findUniqueOrThrow({ where: { id: r.episodeId } })).status).toBe("encoding");
    // Nothing half-written under a real name.
    const store = path.join(settings.DATASETS_DIR, ".store", (await db.episode.findUniqueOrThrow({ where: { id: r.episodeId } })).datasetId, "episodes", r.episodeId);
    // Nothing half-written under a real name: a camera that finished before the stop is whole.
    const left = await fs.readdir(store);
    expect(left.filter((f) => !/^(front|wrist)\.mp4$/.test(f))).toEqual([]);
    for (const f of left) expect((await probeFrames(path.join(store, f))).frames).toBe(240);

    // The retry encodes again, keeping a camera the stopped attempt had finished; a crash after
    // the commit but before cleaning up only cleans up.
    const finished = path.join(store, "front.mp4");
    const frames = (await fs.readdir(path.join(raw, "images/front/episode-0"))).map((f) => path.join(raw, "images/front/episode-0", f)).sort((a, b) => Number(/(\d+)\.png$/.exec(a)![1]) - Number(/(\d+)\.png$/.exec(b)![1]));
    await encodeCamera({ tools: mediaTools(settings), camera: "front", frames, fps: 30, output: finished, settings: encodeSettingsFrom(settings) });
    const encoded = crypto.createHash("sha256").update(await fs.readFile(finished)).digest("hex");
    const logged: string[] = [];
    await encodeEpisode(db, { episodeId: r.episodeId, settings, progress: { ...silentProgress, log: async (m) => void logged.push(m) }, blobs: blobStore(), isLastAttempt: false, commit });
    expect(logged).toContain("Keeping the front video an earlier attempt finished");
    // Stored as it was (the folder's copy is now the blob store's own file).
    expect(episodeFilesOf(await db.episode.findUniqueOrThrow({ where: { id: r.episodeId } }))?.["front.mp4"].sha256).toBe(encoded);
    await encodeEpisode(db, { episodeId: r.episodeId, settings, progress: silentProgress, blobs: blobStore(), isLastAttempt: false, commit });
    expect(commits).toBe(1);
    const episodes = await db.episode.findMany({ where: { dataset: { repoId } } });
    expect(episodes.map((e) => [e.status, e.datasetIndex])).toEqual([["ready", 0]]);
    const info = JSON.parse(await fs.readFile(path.join(datasetDir(settings, actor.orgId, repoId), "meta/info.json"), "utf8"));
    expect(info).toMatchObject({ total_episodes: 1, total_frames: 240 });
  }, 120_000);
});
