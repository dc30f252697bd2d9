import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { parquetBytes, type Column, type ParquetCompression } from "../../server/datasets/lerobot/parquet";
import { JOINTS, episodeRows } from "./edge-episodes";

const run = promisify(execFile);

// LeRobot v3.0 datasets written the way datasets found on the hub are, with whatever feature
// names they chose (LeRobot allows any): `actions` and `state` for the joints, a camera named
// `image`, one MP4 per episode, some of them missing.

export interface GeneratedDataset {
  actionKey?: string;
  stateKey?: string;
  videoKeys?: string[];
  episodes: number;
  frames: number;
  fps?: number;
  /** Episodes whose MP4 (of every camera) is left out. */
  withoutVideo?: number[];
  /** More features declared in info.json and written as columns: scalar (shape [1]) or vector. */
  extra?: Record<string, { dtype: string; shape: number[] }>;
  robotType?: string;
  /** A joint whose state never moves in one episode (the arm's encoder stuck), for dataset scoring. */
  frozenJoint?: { episode: number; joint: number };
  /** The gripper between 10 and 90 (as a real SO-101's 0..100 opening) instead of swinging ±40 like the other joints. */
  gripperOpening?: boolean;
  /** v2.1 only: the codec of the data files, as another tool than LeRobot writes them (SNAPPY by default). */
  compression?: ParquetCompression;
  /** v2.1 only: the codebase_version info.json states (v2.0 has v2.1's layout). */
  codebaseVersion?: "v2.0" | "v2.1";
}

/** info.json's features of a generated dataset: the joints, its cameras, any extras, then LeRobot's index columns. */
function generatedFeatures({ actionKey = "action", stateKey = "observation.state", videoKeys = [], fps = 10 }: GeneratedDataset, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    [actionKey]: { dtype: "float32", shape: [JOINTS.length], names: JOINTS },
    [stateKey]: { dtype: "float32", shape: [JOINTS.length], names: JOINTS },
    ...Object.fromEntries(videoKeys.map((k) => [k, { dtype: "video", shape: [48, 64, 3], names: ["height", "width", "channels"], info: { "video.fps": fps, "video.codec": "h264" } }])),
    ...extra,
    timestamp: { dtype: "float32", shape: [1], names: null },
    frame_index: { dtype: "int64", shape: [1], names: null },
    episode_index: { dtype: "int64", shape: [1], names: null },
    index: { dtype: "int64", shape: [1], names: null },
    task_index: { dtype: "int64", shape: [1], names: null },
  };
}

/** Writes the dataset under `dir` and returns its info.json. */
export async function writeV3Dataset(dir: string, spec: GeneratedDataset): Promise<Record<string, unknown>> {
  const { actionKey = "action", stateKey = "observation.state", videoKeys = [], episodes, frames, fps = 10, withoutVideo = [], extra = {} } = spec;
  const features = generatedFeatures(spec, extra);
  const info = {
    codebase_version: "v3.0",
    robot_type: spec.robotType ?? "so101_follower",
    total_episodes: episodes,
    total_frames: episodes * frames,
    total_tasks: 1,
    chunks_size: 1000,
    fps,
    splits: { train: `0:${episodes}` },
    data_path: "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
    video_path: videoKeys.length ? "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4" : null,
    features,
  };
  await fs.mkdir(path.join(dir, "meta/episodes/chunk-000"), { recursive: true });
  await fs.mkdir(path.join(dir, "data/chunk-000"), { recursive: true });
  await fs.writeFile(path.join(dir, "meta/info.json"), JSON.stringify(info, null, 4));

  const rows = Array.from({ length: episodes }, (_, e) => episodeRows(frames, fps, e));
  if (spec.gripperOpening) {
    const g = JOINTS.indexOf("gripper.pos");
    for (const row of rows.flat()) for (const key of ["action", "observation.state"]) (row[key] as number[])[g] += 50;
  }
  const frozen = spec.frozenJoint;
  if (frozen) {
    const held = (rows[frozen.episode][0]["observation.state"] as number[])[frozen.joint];
    for (const row of rows[frozen.episode]) (row["observation.state"] as number[])[frozen.joint] = held;
  }
  const all = rows.flatMap((r, e) => r.map((row, i) => ({ action: row.action as number[], state: row["observation.state"] as number[], e, i })));
  const extraColumns: Column[] = Object.entries(extra).map(([key, f]) => ({
    name: key,
    leaf: "FLOAT",
    depth: f.shape[0] === 1 ? 0 : 1,
    data: all.map((r) => (f.shape[0] === 1 ? r.i / 10 : Array.from({ length: f.shape[0] }, (_, d) => r.i + d))),
  }));
  await fs.writeFile(
    path.join(dir, "data/chunk-000/file-000.parquet"),
    parquetBytes([
      { name: actionKey, leaf: "FLOAT", depth: 1, data: all.map((r) => r.action) },
      { name: stateKey, leaf: "FLOAT", depth: 1, data: all.map((r) => r.state) },
      ...extraColumns,
      { name: "timestamp", leaf: "FLOAT", depth: 0, data: all.map((r) => r.i / fps) },
      { name: "frame_index", leaf: "INT64", depth: 0, data: all.map((r) => r.i) },
      { name: "episode_index", leaf: "INT64", depth: 0, data: all.map((r) => r.e) },
      { name: "index", leaf: "INT64", depth: 0, data: all.map((_, i) => i) },
      { name: "task_index", leaf: "INT64", depth: 0, data: all.map(() => 0) },
    ]),
  );
  // One video file per episode, as LeRobot leaves them when its files are small.
  const meta: Column[] = [
    { name: "episode_index", leaf: "INT64", depth: 0, data: rows.map((_, e) => e) },
    { name: "tasks", leaf: "STRING", depth: 1, data: rows.map(() => ["Pick the cube"]) },
    { name: "length", leaf: "INT64", depth: 0, data: rows.map(() => frames) },
    { name: "data/chunk_index", leaf: "INT64", depth: 0, data: rows.map(() => 0) },
    { name: "data/file_index", leaf: "INT64", depth: 0, data: rows.map(() => 0) },
    { name: "dataset_from_index", leaf: "INT64", depth: 0, data: rows.map((_, e) => e * frames) },
    { name: "dataset_to_index", leaf: "INT64", depth: 0, data: rows.map((_, e) => (e + 1) * frames) },
  ];
  for (const key of videoKeys) {
    meta.push(
      { name: `videos/${key}/chunk_index`, leaf: "INT64", depth: 0, data: rows.map(() => 0) },
      { name: `videos/${key}/file_index`, leaf: "INT64", depth: 0, data: rows.map((_, e) => e) },
      { name: `videos/${key}/from_timestamp`, leaf: "DOUBLE", depth: 0, data: rows.map(() => 0) },
      { name: `videos/${key}/to_timestamp`, leaf: "DOUBLE", depth: 0, data: rows.map(() => frames / fps) },
    );
    for (let e = 0; e < episodes; e++) {
      if (withoutVideo.includes(e)) continue;
      const file = path.join(dir, `videos/${key}/chunk-000/file-${String(e).padStart(3, "0")}.mp4`);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await run("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `testsrc=size=64x48:rate=${fps}`, "-frames:v", String(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", file]);
    }
  }
  await fs.writeFile(path.join(dir, "meta/episodes/chunk-000/file-000.parquet"), parquetBytes(meta));
  await fs.writeFile(path.join(dir, "meta/tasks.parquet"), parquetBytes([{ name: "task_index", leaf: "INT64", depth: 0, data: [0] }, { name: "__index_level_0__", leaf: "STRING", depth: 0, data: ["Pick the cube"] }]));
  return info;
}

/** The same dataset in LeRobot v2.1's layout: one parquet and one MP4 per episode, metadata in JSON lines. */
export async function writeV21Dataset(dir: string, spec: GeneratedDataset): Promise<Record<string, unknown>> {
  const { actionKey = "action", stateKey = "observation.state", videoKeys = [], episodes, frames, fps = 10, withoutVideo = [] } = spec;
  const features = generatedFeatures(spec);
  const info = {
    codebase_version: spec.codebaseVersion ?? "v2.1",
    robot_type: spec.robotType ?? "so101_follower",
    total_episodes: episodes,
    total_frames: episodes * frames,
    total_tasks: 1,
    total_chunks: 1,
    chunks_size: 1000,
    fps,
    splits: { train: `0:${episodes}` },
    data_path: "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
    video_path: videoKeys.length ? "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4" : null,
    features,
  };
  await fs.mkdir(path.join(dir, "meta"), { recursive: true });
  await fs.mkdir(path.join(dir, "data/chunk-000"), { recursive: true });
  await fs.writeFile(path.join(dir, "meta/info.json"), JSON.stringify(info, null, 4));
  await fs.writeFile(path.join(dir, "meta/tasks.jsonl"), JSON.stringify({ task_index: 0, task: "Pick the cube" }) + "\n");
  await fs.writeFile(path.join(dir, "meta/episodes.jsonl"), Array.from({ length: episodes }, (_, e) => JSON.stringify({ episode_index: e, tasks: ["Pick the cube"], length: frames })).join("\n") + "\n");
  for (let e = 0; e < episodes; e++) {
    const rows = episodeRows(frames, fps, e);
    await fs.writeFile(
      path.join(dir, `data/chunk-000/episode_${String(e).padStart(6, "0")}.parquet`),
      parquetBytes([
        { name: actionKey, leaf: "FLOAT", depth: 1, data: rows.map((r) => r.action as number[]) },
        { name: stateKey, leaf: "FLOAT", depth: 1, data: rows.map((r) => r["observation.state"] as number[]) },
        { name: "timestamp", leaf: "FLOAT", depth: 0, data: rows.map((_, i) => i / fps) },
        { name: "frame_index", leaf: "INT64", depth: 0, data: rows.map((_, i) => i) },
        { name: "episode_index", leaf: "INT64", depth: 0, data: rows.map(() => e) },
        { name: "index", leaf: "INT64", depth: 0, data: rows.map((_, i) => e * frames + i) },
        { name: "task_index", leaf: "INT64", depth: 0, data: rows.map(() => 0) },
      ], { compression: spec.compression }),
    );
    for (const key of videoKeys) {
      if (withoutVideo.includes(e)) continue;
      const file = path.join(dir, `videos/chunk-000/${key}/episode_${String(e).padStart(6, "0")}.mp4`);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await run("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `testsrc=size=64x48:rate=${fps}`, "-frames:v", String(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", file]);
    }
  }
  return info;
}
