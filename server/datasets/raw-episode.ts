import fs from "node:fs/promises";
import path from "node:path";
import { AppError } from "../errors";
import { cameraNameSchema } from "./datasets.schemas";
import { readParquetFile } from "./lerobot/parquet-read";

// The raw episode layout agents upload (LeRobot's recorder layout), under EDGE_UPLOAD_DIR/<org id>/<repo_id>/:
//   images/<camera>/episode-<n>/frame-<i>.png   raw frames (mode "edge"); LeRobot's episode_000000/frame_000000.png too
//   videos/<camera>/episode-<n>.mp4             already encoded (mode "local")
//   data/episode-<n>.jsonl | .parquet           one row per frame: frame_index, timestamp, observation.state, action

const EPISODE_NAME = /^episode[-_](\d{1,9})$/;
export const FRAME_NAME = /^frame[-_](\d{1,9})\.png$/;
const VIDEO_NAME = /^episode[-_](\d{1,9})\.mp4$/;
const IMAGE_PREFIX = "observation.images.";
const DATA_NAME = /^episode[-_](\d{1,9})\.(jsonl|parquet)$/;

export type IngestMode = "edge" | "local";

export interface RawCamera {
  name: string;
  /** Mode "edge": the folder of PNG frames. */
  framesDir?: string;
  /** Mode "local": the agent's MP4. */
  video?: string;
}

export interface RawEpisode {
  root: string;
  number: number;
  dataFile: string;
  cameras: RawCamera[];
}

type Listing = (dir: string) => Promise<{ name: string; isDir: boolean }[]>;

async function listDir(dir: string): Promise<{ name: string; isDir: boolean }[]> {
  try {
    return (await fs.readdir(dir, { withFileTypes: true })).map((d) => ({ name: d.name, isDir: d.isDirectory() }));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

/** A listing of files named by their paths (/ between folders), as if they were a folder: root "". */
export function listingOf(paths: string[]): Listing {
  return async (dir) => {
    const prefix = dir ? `${dir.split(path.sep).join("/")}/` : "";
    const entries = new Map<string, boolean>();
    for (const p of paths) {
      if (!p.startsWith(prefix)) continue;
      const [name, ...below] = p.slice(prefix.length).split("/");
      entries.set(name, (entries.get(name) ?? false) || below.length > 0);
    }
    return [...entries].map(([name, isDir]) => ({ name, isDir }));
  };
}

/**
 * Finds an episode's files; throws naming what is missing. Reads folder listings only: of the
 * folder `root`, or what `list` says (files not on this disk, listingOf).
 */
export async function findRawEpisode(root: string, number: number, mode: IngestMode, list: Listing = listDir): Promise<RawEpisode> {
  const dataFiles = (await list(path.join(root, "data"))).filter((e) => !e.isDir && Number(DATA_NAME.exec(e.name)?.[1] ?? -1) === number);
  const problems: string[] = [];
  if (dataFiles.length === 0) problems.push(`data/episode-${number}.jsonl (or .parquet) with one row per frame`);
  if (dataFiles.length > 1) problems.push(`one data file for episode ${number}, found ${dataFiles.map((f) => f.name).join(", ")}`);

  const cameras: RawCamera[] = [];
  const kindDir = mode === "edge" ? "images" : "videos";
  for (const cam of await list(path.join(root, kindDir))) {
    // LeRobot's recorder names the folder after the feature (observation.images.front); a bare camera name works too.
    const name = cam.name.startsWith(IMAGE_PREFIX) ? cam.name.slice(IMAGE_PREFIX.length) : cam.name;
    if (!cam.isDir || !cameraNameSchema.safeParse(name).success) continue;
    if (cameras.some((c) => c.name === name)) throw new AppError("BAD_REQUEST", `Camera ${name} appears twice in ${kindDir}/ (as ${name} and ${IMAGE_PREFIX}${name})`);
    const entries = await list(path.join(root, kindDir, cam.name));
    if (mode === "edge") {
      const dir = entries.find((e) => e.isDir && Number(EPISODE_NAME.exec(e.name)?.[1] ?? -1) === number);
      if (dir) cameras.push({ name, framesDir: path.join(root, kindDir, cam.name, dir.name) });
    } else {
      const file = entries.find((e) => !e.isDir && Number(VIDEO_NAME.exec(e.name)?.[1] ?? -1) === number);
      if (file) cameras.push({ name, video: path.join(root, kindDir, cam.name, file.name) });
    }
  }
  if (cameras.length === 0) {
    problems.push(mode === "edge" ? `frames in images/<camera>/episode-${number}/frame-<i>.png` : `videos/<camera>/episode-${number}.mp4`);
  }
  if (problems.length) throw new AppError("BAD_REQUEST", `Episode ${number} is incomplete in the upload folder: missing ${problems.join("; ")}`);
  cameras.sort((a, b) => a.name.localeCompare(b.name));
  return { root, number, dataFile: path.join(root, "data", dataFiles[0].name), cameras };
}

/** A camera's frames in order; a gap in the numbering names the first missing frame. */
export async function listFrames(framesDir: string, cameraName: string): Promise<string[]> {
  const frames = (await listDir(framesDir))
    .map((e) => ({ e, m: FRAME_NAME.exec(e.name) }))
    .filter((x) => x.m && !x.e.isDir)
    .map((x) => ({ index: Number(x.m![1]), file: path.join(framesDir, x.e.name) }))
    .sort((a, b) => a.index - b.index);
  if (frames.length === 0) throw new AppError("BAD_REQUEST", `Camera ${cameraName} has no frames in ${path.basename(framesDir)}`);
  for (let i = 0; i < frames.length; i++) {
    if (frames[i].index === i) continue;
    if (frames[i].index < i) throw new AppError("BAD_REQUEST", `Camera ${cameraName}: frame ${i} appears twice (${path.basename(frames[i - 1].file)} and ${path.basename(frames[i].file)})`);
    throw new AppError("BAD_REQUEST", `Camera ${cameraName}: frame ${i} is missing (frame-${i}.png in ${path.basename(framesDir)}); the frames jump from ${i - 1} to ${frames[i].index}`);
  }
  return frames.map((f) => f.file);
}

export interface FrameRow {
  frame_index: number;
  timestamp: number;
  "observation.state": number[];
  action: number[];
  /** Other numeric per-frame values (e.g. next.reward). */
  extra: Record<string, number>;
}

const RESERVED = new Set(["frame_index", "timestamp", "observation.state", "action", "episode_index", "index", "task_index", "task"]);

function toNumber(v: unknown): number | null {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "boolean") return v ? 1 : 0;
  return null;
}

function toVector(v: unknown): number[] | null {
  if (ArrayLike(v)) {
    const out = Array.from(v as ArrayLike<unknown>, toNumber);
    return out.every((x) => x !== null && Number.isFinite(x)) ? (out as number[]) : null;
  }
  return null;
}

function ArrayLike(v: unknown): boolean {
  return Array.isArray(v) || ArrayBuffer.isView(v);
}

/** Reads the per-frame data file (JSONL or parquet) and checks every row. */
export async function readFrameRows(file: string): Promise<FrameRow[]> {
  let raw: Record<string, unknown>[];
  const name = path.basename(file);
  if (file.endsWith(".parquet")) {
    try {
      raw = await readParquetFile(file);
    } catch (error) {
      throw new AppError("BAD_REQUEST", `${name} is not a readable parquet file: ${(error as Error).message}`);
    }
  } else {
    const text = await fs.readFile(file, "utf8");
    raw = [];
    for (const [i, line] of text.split("\n").entries()) {
      if (!line.trim()) continue;
      try {
        raw.push(JSON.parse(line));
      } catch {
        throw new AppError("BAD_REQUEST", `${name} line ${i + 1} is not JSON`);
      }
    }
  }
  if (raw.length === 0) throw new AppError("BAD_REQUEST", `${name} has no rows`);
  const rows: FrameRow[] = [];
  let width: { state: number; action: number } | null = null;
  for (const [i, r] of raw.entries()) {
    const where = `${name} row ${i + 1}`;
    const frameIndex = toNumber(r.frame_index ?? i);
    const timestamp = toNumber(r.timestamp);
    const state = toVector(r["observation.state"]);
    const action = toVector(r.action);
    if (frameIndex !== i) throw new AppError("BAD_REQUEST", `${where}: frame_index is ${String(r.frame_index)}, expected ${i} (rows must be in frame order from 0)`);
    if (timestamp === null || !Number.isFinite(timestamp)) throw new AppError("BAD_REQUEST", `${where}: timestamp (seconds) is missing or not a number`);
    if (!state) throw new AppError("BAD_REQUEST", `${where}: observation.state must be a list of numbers`);
    if (!action) throw new AppError("BAD_REQUEST", `${where}: action must be a list of numbers`);
    width ??= { state: state.length, action: action.length };
    if (state.length !== width.state || action.length !== width.action) throw new AppError("BAD_REQUEST", `${where}: observation.state/action have ${state.length}/${action.length} values, earlier rows ${width.state}/${width.action}`);
    const extra: Record<string, number> = {};
    for (const [k, v] of Object.entries(r)) {
      if (RESERVED.has(k)) continue;
      const n = toNumber(v);
      if (n !== null && Number.isFinite(n) && /^[A-Za-z0-9_.]{1,100}$/.test(k)) extra[k] = n;
    }
    rows.push({ frame_index: i, timestamp, "observation.state": state, action, extra });
  }
  return rows;
}

/** Frames per second from the timestamps (the median step), when the recorder did not say. */
export function fpsFromRows(rows: FrameRow[]): number | null {
  if (rows.length < 2) return null;
  const steps = rows.slice(1).map((r, i) => r.timestamp - rows[i].timestamp).filter((d) => d > 0).sort((a, b) => a - b);
  if (!steps.length) return null;
  const fps = Math.round(1 / steps[Math.floor(steps.length / 2)]);
  return fps >= 1 && fps <= 1000 ? fps : null;
}

/** Deletes an episode's raw files (and the folders of frames they leave empty). */
export async function removeRawEpisode(raw: RawEpisode | null): Promise<void> {
  if (!raw) return;
  for (const c of raw.cameras) {
    if (c.framesDir) await fs.rm(c.framesDir, { recursive: true, force: true });
    if (c.video) await fs.rm(c.video, { force: true });
  }
  await fs.rm(raw.dataFile, { force: true });
}
