import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { env } from "../../env";
import { mediaTools, probeVideo } from "../../media/ffmpeg";
import type { StoredEpisode } from "../episode-store";
import { buildLeRobotDataset } from "./build";
import { aggregateStats, sampleIndices, vectorStats } from "./stats";

const run = promisify(execFile);
let tmp: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-build-"));
});
afterAll(() => fs.rm(tmp, { recursive: true, force: true }));

describe("statistics", () => {
  it("matches numpy's definitions and LeRobot's aggregation", () => {
    const s = vectorStats([[1], [2], [3], [4]]);
    expect(s).toMatchObject({ min: [1], max: [4], mean: [2.5], count: [4], q50: [2.5] });
    expect(s.std[0]).toBeCloseTo(Math.sqrt(1.25), 12); // population std, as numpy's default
    expect(s.q10[0]).toBeCloseTo(1.3, 12);
    const all = aggregateStats([vectorStats([[1], [2]]), vectorStats([[3], [4]])]);
    expect(all.mean[0]).toBe(2.5);
    expect(all.std[0]).toBeCloseTo(Math.sqrt(1.25), 12);
    expect(all).toMatchObject({ min: [1], max: [4], count: [4] });
    expect(sampleIndices(373)).toHaveLength(100);
    expect(sampleIndices(373).at(-1)).toBe(372);
    expect(sampleIndices(20)).toHaveLength(20);
  });
});

describe("building a dataset", () => {
  it("rolls data and video files over at their size limits, with each episode's timestamps in its own file", async () => {
    const tools = mediaTools(env());
    const lengths = [12, 9, 15];
    const episodes = [];
    for (const [i, length] of lengths.entries()) {
      const dir = path.join(tmp, `ep${i}`);
      await fs.mkdir(dir);
      await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", String(length), "-c:v", "libx264", "-pix_fmt", "yuv420p", path.join(dir, "cam.mp4")]);
      const probe = await probeVideo(tools, path.join(dir, "cam.mp4"));
      const stored: StoredEpisode = {
        fps: 10,
        rows: Array.from({ length }, (_, f) => ({ frame_index: f, timestamp: f / 10, "observation.state": [f, i], action: [f + 1, i], extra: { "next.reward": f === length - 1 ? 1 : 0 } })),
        videos: { cam: probe },
      };
      episodes.push({ task: i === 1 ? "place" : "pick", dir, stored });
    }
    const out = path.join(tmp, "out");
    // Limits of a few bytes: every episode starts a new file.
    const result = await buildLeRobotDataset({ outDir: out, fps: 10, robotType: "koch", names: { action: ["a", "b"], state: ["a", "b"] }, cameras: ["cam"], missingCameras: [], episodes, tools, limits: { dataFileMb: 1e-6, videoFileMb: 1e-6 } });
    expect(result.totalFrames).toBe(36);
    const meta = (await parquetReadObjects({ file: await asyncBufferFromFile(path.join(out, "meta/episodes/chunk-000/file-000.parquet")) })) as Record<string, unknown>[];
    expect(meta.map((m) => [m["data/file_index"], m["videos/observation.images.cam/file_index"], m["videos/observation.images.cam/from_timestamp"], m.tasks])).toEqual([
      [0n, 0n, 0, ["pick"]],
      [1n, 1n, 0, ["place"]],
      [2n, 2n, 0, ["pick"]],
    ]);
    const data2 = (await parquetReadObjects({ file: await asyncBufferFromFile(path.join(out, "data/chunk-000/file-002.parquet")) })) as Record<string, unknown>[];
    expect(data2).toHaveLength(15);
    expect(data2[0]).toMatchObject({ episode_index: 2n, index: 21n, task_index: 0n, frame_index: 0n, "next.reward": 0 });
    expect(data2[14]["next.reward"]).toBe(1);
    const info = JSON.parse(await fs.readFile(path.join(out, "meta/info.json"), "utf8"));
    expect(Object.keys(info.features)).toEqual(["action", "observation.state", "next.reward", "observation.images.cam", "timestamp", "frame_index", "episode_index", "index", "task_index"]);
    expect(info).toMatchObject({ total_tasks: 2, robot_type: "koch", features: { action: { names: ["a", "b"] } } });
    // A file holding one episode is that episode's MP4, linked, not copied.
    expect((await fs.stat(path.join(out, "videos/observation.images.cam/chunk-000/file-001.mp4"))).ino).toBe((await fs.stat(path.join(tmp, "ep1/cam.mp4"))).ino);

    // Without limits: one data file and one video file, episodes end to end.
    const together = path.join(tmp, "together");
    await buildLeRobotDataset({ outDir: together, fps: 10, robotType: null, names: { action: null, state: null }, cameras: ["cam"], missingCameras: [], episodes, tools });
    const metaTogether = (await parquetReadObjects({ file: await asyncBufferFromFile(path.join(together, "meta/episodes/chunk-000/file-000.parquet")) })) as Record<string, unknown>[];
    expect(metaTogether.map((m) => [m["videos/observation.images.cam/from_timestamp"], m["videos/observation.images.cam/to_timestamp"]])).toEqual([[0, 1.2], [1.2, 2.1], [2.1, 3.6]]);
    expect((await probeVideo(tools, path.join(together, "videos/observation.images.cam/chunk-000/file-000.mp4"))).frames).toBe(36);
    const infoTogether = JSON.parse(await fs.readFile(path.join(together, "meta/info.json"), "utf8"));
    expect(infoTogether.features.action.names).toEqual(["motor_0", "motor_1"]);
  });

  it("appends without rewriting: earlier episodes keep their files, byte for byte, and new ones get files of their own", async () => {
    const tools = mediaTools(env());
    const episodes = [];
    for (const i of [0, 1, 2, 3]) {
      const dir = path.join(tmp, `reuse${i}`);
      await fs.mkdir(dir);
      await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", path.join(dir, "cam.mp4")]);
      episodes.push({ task: "t", dir, stored: { fps: 10, rows: Array.from({ length: 10 }, (_, f) => ({ frame_index: f, timestamp: f / 10, "observation.state": [f + i], action: [f], extra: {} })), videos: { cam: await probeVideo(tools, path.join(dir, "cam.mp4")) } } });
    }
    // Two episodes fill a video file.
    const size = (await fs.stat(path.join(tmp, "reuse0/cam.mp4"))).size;
    const limits = { videoFileMb: (1.5 * size) / 1024 / 1024 };
    const common = { fps: 10, robotType: null, names: { action: null, state: null }, cameras: ["cam"], missingCameras: [], tools, limits };
    const first = await buildLeRobotDataset({ ...common, outDir: path.join(tmp, "b1"), episodes: episodes.slice(0, 3) });
    const second = await buildLeRobotDataset({ ...common, outDir: path.join(tmp, "b2"), episodes, previous: { dir: path.join(tmp, "b1"), manifest: first.manifest, layout: first.layout } });
    const video = (b: string, n: number) => path.join(tmp, b, `videos/observation.images.cam/chunk-000/file-00${n}.mp4`);
    const data = (b: string, n: number) => path.join(tmp, b, `data/chunk-000/file-00${n}.parquet`);
    // The first build: episodes 0-1 in video file 0, episode 2 in file 1; one data file.
    expect(first.layout.videos["observation.images.cam"]).toEqual([{ chunk: 0, file: 0 }, { chunk: 0, file: 0 }, { chunk: 0, file: 1 }]);
    // The append: episode 3 has a video file and a data file of its own; the others are the first build's.
    expect(second.layout.videos["observation.images.cam"]).toEqual([{ chunk: 0, file: 0 }, { chunk: 0, file: 0 }, { chunk: 0, file: 1 }, { chunk: 0, file: 2 }]);
    expect(second.layout.data).toEqual([{ chunk: 0, file: 0 }, { chunk: 0, file: 0 }, { chunk: 0, file: 0 }, { chunk: 0, file: 1 }]);
    for (const n of [0, 1]) expect((await fs.stat(video("b2", n))).ino).toBe((await fs.stat(video("b1", n))).ino);
    expect(await fs.readFile(data("b2", 0))).toEqual(await fs.readFile(data("b1", 0)));
    expect((await probeVideo(tools, video("b2", 2))).frames).toBe(10);
    // What LeRobot reads: episode 3's rows in the new file with their global indices, and its video from 0 s.
    const rows = await parquetReadObjects({ file: await asyncBufferFromFile(data("b2", 1)) });
    expect(rows.map((r) => Number(r.index))).toEqual(Array.from({ length: 10 }, (_, f) => 30 + f));
    expect(rows.every((r) => Number(r.episode_index) === 3)).toBe(true);
    const meta = await parquetReadObjects({ file: await asyncBufferFromFile(path.join(tmp, "b2", "meta/episodes/chunk-000/file-000.parquet")) });
    expect(meta.map((m) => [Number(m["data/file_index"]), Number(m["videos/observation.images.cam/file_index"]), m["videos/observation.images.cam/from_timestamp"]])).toEqual([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 2, 0]]);

    // Any other change (episode 1 removed) packs the episodes afresh.
    const third = await buildLeRobotDataset({ ...common, outDir: path.join(tmp, "b3"), episodes: [episodes[0], episodes[2], episodes[3]], previous: { dir: path.join(tmp, "b2"), manifest: second.manifest, layout: second.layout } });
    expect(third.layout.videos["observation.images.cam"]).toEqual([{ chunk: 0, file: 0 }, { chunk: 0, file: 0 }, { chunk: 0, file: 1 }]);
    expect(third.layout.data).toEqual([{ chunk: 0, file: 0 }, { chunk: 0, file: 0 }, { chunk: 0, file: 0 }]);
    expect((await probeVideo(tools, video("b3", 0))).frames).toBe(20);
  });
});
