import fs from "node:fs";
import path from "node:path";
import { parseEntryPath } from "../server/edge/edge.schemas";

// A recording folder in LeRobot's recorder layout (docs/edge.md):
//   images/<camera>/episode-<n>/frame-<i>.png   raw frames, one folder per camera and episode
//   videos/<camera>/episode-<n>.mp4             or, once encoded here (mode 0), one video each
//   data/episode-<n>.jsonl | .parquet           one row per frame: timestamp, state, action
// (LeRobot's own spelling, episode_000000/frame_000000.png, works too.) Camera folders named by
// feature key, images/observation.images.<camera>/, are sent as <camera>. Anything else in the
// folder is left alone.

export interface EpisodeFile {
  /** Path inside the recording folder, with '/' separators: the name it has on the portal. */
  rel: string;
  abs: string;
  size: number;
  mtimeMs: number;
}

export interface EpisodeOnDisk {
  index: number;
  cameras: string[];
  frames: Map<string, EpisodeFile[]>;
  videos: Map<string, EpisodeFile>;
  data: EpisodeFile | null;
  /** Latest modification among its files (for deciding that recording has finished). */
  lastChangeMs: number;
}

function list(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

/**
 * The camera's name on the portal. LeRobot names camera folders by feature key
 * ("observation.images.front"); the portal calls that camera "front".
 */
export function portalCameraName(folder: string): string {
  return folder.startsWith("observation.images.") ? folder.slice("observation.images.".length) : folder;
}

const frameNumber = (rel: string) => Number(/frame[-_](\d+)\.png$/.exec(rel)?.[1] ?? 0);

/** Every episode in a recording folder, by episode number. */
export function scanRecording(root: string): Map<number, EpisodeOnDisk> {
  const episodes = new Map<number, EpisodeOnDisk>();
  const episode = (index: number) => {
    let e = episodes.get(index);
    if (!e) episodes.set(index, (e = { index, cameras: [], frames: new Map(), videos: new Map(), data: null, lastChangeMs: 0 }));
    return e;
  };
  const file = (rel: string, abs: string): EpisodeFile | null => {
    try {
      const st = fs.statSync(abs);
      return st.isFile() ? { rel, abs, size: st.size, mtimeMs: st.mtimeMs } : null;
    } catch {
      return null; // removed while we looked
    }
  };
  const note = (e: EpisodeOnDisk, f: EpisodeFile) => {
    e.lastChangeMs = Math.max(e.lastChangeMs, f.mtimeMs);
  };

  for (const cam of list(path.join(root, "images")).filter((d) => d.isDirectory())) {
    const camera = portalCameraName(cam.name);
    for (const epDir of list(path.join(root, "images", cam.name)).filter((d) => d.isDirectory())) {
      for (const f of list(path.join(root, "images", cam.name, epDir.name))) {
        const rel = `images/${camera}/${epDir.name}/${f.name}`;
        const parsed = parseEntryPath(rel);
        if (!parsed || !f.isFile()) continue;
        const info = file(rel, path.join(root, "images", cam.name, epDir.name, f.name));
        if (!info) continue;
        const e = episode(parsed.episodeIndex);
        const frames = e.frames.get(camera) ?? [];
        frames.push(info);
        e.frames.set(camera, frames);
        note(e, info);
      }
    }
  }
  for (const cam of list(path.join(root, "videos")).filter((d) => d.isDirectory())) {
    const camera = portalCameraName(cam.name);
    for (const f of list(path.join(root, "videos", cam.name))) {
      const rel = `videos/${camera}/${f.name}`;
      const parsed = parseEntryPath(rel);
      if (!parsed || !f.isFile()) continue;
      const info = file(rel, path.join(root, "videos", cam.name, f.name));
      if (!info) continue;
      const e = episode(parsed.episodeIndex);
      e.videos.set(camera, info);
      note(e, info);
    }
  }
  for (const f of list(path.join(root, "data"))) {
    const rel = `data/${f.name}`;
    const parsed = parseEntryPath(rel);
    if (!parsed || !f.isFile()) continue;
    const info = file(rel, path.join(root, "data", f.name));
    if (!info) continue;
    const e = episode(parsed.episodeIndex);
    // Both formats for one episode would be ambiguous; JSONL is what a recorder appends to last.
    if (!e.data || rel.endsWith(".jsonl")) e.data = info;
    note(e, info);
  }
  for (const e of episodes.values()) {
    for (const frames of e.frames.values()) frames.sort((a, b) => frameNumber(a.rel) - frameNumber(b.rel));
    e.cameras = [...new Set([...e.frames.keys(), ...e.videos.keys()])].sort();
  }
  return episodes;
}

/** The files an upload in `mode` carries: raw frames (edge) or videos (local), and the data file. */
export function episodeFiles(e: EpisodeOnDisk, mode: "edge" | "local"): EpisodeFile[] {
  const media = mode === "edge" ? [...e.frames.keys()].sort().flatMap((cam) => e.frames.get(cam)!) : [...e.videos.keys()].sort().map((cam) => e.videos.get(cam)!);
  return e.data ? [...media, e.data] : media;
}

/** Frames per second from the first rows of a JSONL data file, when it has timestamps. */
export function inferFps(e: EpisodeOnDisk): number | undefined {
  if (!e.data || !e.data.rel.endsWith(".jsonl")) return undefined;
  const fd = fs.openSync(e.data.abs, "r");
  try {
    const buf = Buffer.alloc(64 * 1024);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const rows = buf.subarray(0, n).toString("utf8").split("\n").slice(0, 3).filter(Boolean);
    const ts = rows.map((r) => {
      try {
        return Number((JSON.parse(r) as { timestamp?: unknown }).timestamp);
      } catch {
        return NaN;
      }
    });
    const dt = ts[1] - ts[0];
    return ts.length >= 2 && Number.isFinite(dt) && dt > 0 ? Math.round(1 / dt) : undefined;
  } finally {
    fs.closeSync(fd);
  }
}
