import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { cameraNameSchema, datasetStoreDir } from "./datasets.schemas";
import { resolveInside } from "../security/paths";
import type { FeatureStats } from "./lerobot/stats";
import type { FrameRow } from "./raw-episode";

// Each episode's own files, kept beside the built dataset: its per-frame rows and one MP4 per
// camera. The LeRobot folder is built from these, so deleting an episode and restoring it
// later is a rebuild, and a build that dies half-way loses nothing.

export interface StoredEpisode {
  fps: number;
  rows: FrameRow[];
  /** camera → what ffprobe read from its MP4. */
  videos: Record<string, { codec: string; width: number; height: number; pixFmt: string; frames: number; durationS: number }>;
  /** camera → stats of its sampled frames (LeRobot's image stats). */
  imageStats?: Record<string, FeatureStats>;
}

export function episodeStoreDir(settings: { DATASETS_DIR: string }, datasetId: string, episodeId: string): string {
  return resolveInside(datasetStoreDir(settings, datasetId), "episodes", episodeId);
}

export function storedVideoPath(dir: string, camera: string): string {
  return resolveInside(dir, `${cameraNameSchema.parse(camera)}.mp4`);
}

/** Writes a file whole: to a temporary name first, then renamed into place. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const temp = `${file}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
  await fs.writeFile(temp, data);
  await fs.rename(temp, file);
}

export function tempPath(file: string): string {
  return `${file}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
}

export async function writeStoredEpisode(dir: string, episode: StoredEpisode): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, "episode.json"), JSON.stringify(episode));
}

export async function readStoredEpisode(dir: string): Promise<StoredEpisode> {
  return JSON.parse(await fs.readFile(path.join(dir, "episode.json"), "utf8")) as StoredEpisode;
}
