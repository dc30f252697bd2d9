import fs from "node:fs/promises";
import path from "node:path";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { recordAudit } from "../audit/audit.service";
import type { OrgActor } from "../auth/roles";
import type { Db } from "../db";
import { AppError } from "../errors";
import { Prisma } from "../generated/prisma/client";
import { importDatasetJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import type { ProgressReporter } from "../jobs/progress";
import { codecOptions, encodeSegment, mediaTools, probeVideo, sampleFramesRgb, type MediaTools } from "../media/ffmpeg";
import { rebuildDataset } from "./builder.service";
import { cameraNameSchema, featuresToJson, parseRepoId, resolveInside } from "./datasets.schemas";
import type { EncodeEnv } from "./encode.service";
import { episodeStoreDir, storedVideoPath, tempPath, writeStoredEpisode, type StoredEpisode } from "./episode-store";
import { imageStats, sampleIndices, type FeatureStats } from "./lerobot/stats";
import type { FrameRow } from "./raw-episode";

// Imports an existing LeRobot dataset, v3.0 (meta/episodes/*.parquet, concatenated videos) or
// v2.1 (meta/episodes.jsonl, one parquet and one MP4 per episode). Each episode becomes an
// episode of a Gantry dataset with its own rows and videos, and the dataset is then written
// in v3.0's layout like any other. Videos that are missing are recorded as such: the joints
// still import and show.

const IMAGE_PREFIX = "observation.images.";

export interface ImportSettings extends EncodeEnv {
  datasetImportRoots: string[];
}

/** A folder inside one of the allowed roots (symbolic links resolved first), or a 400. */
export async function resolveImportFolder(settings: { datasetImportRoots: string[] }, folder: string): Promise<string> {
  let real: string;
  try {
    real = await fs.realpath(path.resolve(folder));
  } catch {
    throw new AppError("BAD_REQUEST", `${folder} does not exist on the server`);
  }
  const roots = await Promise.all(settings.datasetImportRoots.map((r) => fs.realpath(r).catch(() => path.resolve(r))));
  if (!roots.some((root) => real === root || real.startsWith(root + path.sep))) {
    throw new AppError("FORBIDDEN", `${folder} is outside the folders datasets may be imported from (DATASET_IMPORT_ROOTS: ${settings.datasetImportRoots.join(", ")})`);
  }
  return real;
}

/** Finds the dataset root: the folder itself or its only subfolder, holding meta/info.json. */
export async function findDatasetRoot(dir: string): Promise<{ root: string; version: "v2.1" | "v3.0"; info: Record<string, unknown> }> {
  for (const candidate of [dir, ...(await fs.readdir(dir, { withFileTypes: true }).catch(() => [])).filter((d) => d.isDirectory()).map((d) => path.join(dir, d.name))]) {
    const text = await fs.readFile(path.join(candidate, "meta/info.json"), "utf8").catch(() => null);
    if (text === null) continue;
    let info: Record<string, unknown>;
    try {
      info = JSON.parse(text);
    } catch {
      throw new AppError("BAD_REQUEST", "meta/info.json is not JSON");
    }
    const version = String(info.codebase_version ?? "");
    if (version !== "v2.1" && version !== "v3.0") throw new AppError("BAD_REQUEST", `This is a LeRobot ${version || "(unversioned)"} dataset; Gantry imports v2.1 and v3.0 (convert older ones with LeRobot first)`);
    return { root: candidate, version, info };
  }
  throw new AppError("BAD_REQUEST", "No meta/info.json found: this is not a LeRobot dataset folder");
}

/** Starts an import from a folder on the server. */
export async function importDatasetFromFolder(db: Db, { actor, input, settings }: { actor: OrgActor; input: { path: string; repoId: string }; settings: ImportSettings }): Promise<{ datasetId: string; jobId: string }> {
  const folder = await resolveImportFolder(settings, input.path);
  const { root } = await findDatasetRoot(folder);
  return startImport(db, { actor, repoId: input.repoId, sourceDir: root, removeSource: false, from: input.path });
}

/** Creates the dataset and queues its import, in one transaction. */
export async function startImport(db: Db, { actor, repoId, sourceDir, removeSource, from }: { actor: OrgActor; repoId: string; sourceDir: string; removeSource: boolean; from: string }): Promise<{ datasetId: string; jobId: string }> {
  const id = parseRepoId(repoId);
  try {
    return await db.$transaction(async (tx) => {
      const dataset = await tx.dataset.create({ data: { orgId: actor.orgId, repoId: id, source: "import", createdById: actor.userId } });
      const { jobId } = await enqueue(importDatasetJob, { datasetId: dataset.id, sourceDir, removeSource }, { tx, orgId: actor.orgId, createdById: actor.userId });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "dataset.import", target: dataset.id, data: { repoId: id, from } });
      return { datasetId: dataset.id, jobId };
    });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new AppError("CONFLICT", `Your organisation already has a dataset named ${id}; choose another repo id`);
    throw error;
  }
}

interface SourceEpisode {
  index: number;
  task: string;
  length: number;
  rows: FrameRow[];
  /** camera → where its frames are. */
  videos: Record<string, { file: string; from: number } | null>;
  importedStats: Record<string, FeatureStats>;
}

const num = (v: unknown) => (typeof v === "bigint" ? Number(v) : Number(v));

function flatNames(names: unknown): string[] | null {
  if (Array.isArray(names)) return names.map(String);
  if (names && typeof names === "object") {
    const first = Object.values(names as Record<string, unknown>).find(Array.isArray);
    return first ? (first as unknown[]).map(String) : null;
  }
  return null;
}

function toRows(raw: Record<string, unknown>[], extras: string[]): FrameRow[] {
  return raw.map((r, i) => {
    const vector = (v: unknown) => Array.from((v ?? []) as ArrayLike<unknown>, num);
    const extra: Record<string, number> = {};
    for (const k of extras) {
      const v = r[k];
      extra[k] = Array.isArray(v) || ArrayBuffer.isView(v) ? num((v as ArrayLike<unknown>)[0]) : num(v);
    }
    return { frame_index: i, timestamp: num(r.timestamp ?? i), "observation.state": vector(r["observation.state"]), action: vector(r.action), extra };
  });
}

async function readParquetRows(file: string): Promise<Record<string, unknown>[]> {
  return (await parquetReadObjects({ file: await asyncBufferFromFile(file) })) as Record<string, unknown>[];
}

const fill = (pattern: string, values: Record<string, string | number>) =>
  pattern.replace(/\{(\w+)(?::0?(\d+)d)?\}/g, (_, key: string, width?: string) => {
    const v = values[key];
    return typeof v === "number" && width ? String(v).padStart(Number(width), "0") : String(v);
  });

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(() => true, () => false);
}

function statsFrom(row: Record<string, unknown>, key: string): FeatureStats | null {
  const get = (stat: string) => row[`stats/${key}/${stat}`];
  if (get("mean") === undefined) return null;
  const flat = (v: unknown): number[] => (Array.isArray(v) ? (v as unknown[]).flat(3).map(num) : []);
  return { min: flat(get("min")), max: flat(get("max")), mean: flat(get("mean")), std: flat(get("std")), count: [num(flat(get("count"))[0] ?? 0)], q01: flat(get("q01")), q10: flat(get("q10")), q50: flat(get("q50")), q90: flat(get("q90")), q99: flat(get("q99")) };
}

/** Reads every episode of a v3.0 or v2.1 dataset. */
async function readSourceEpisodes(root: string, version: "v2.1" | "v3.0", info: Record<string, unknown>, cameras: string[], extras: string[]): Promise<SourceEpisode[]> {
  const videoPath = typeof info.video_path === "string" ? info.video_path : null;
  const dataPath = String(info.data_path ?? "");
  const inside = (rel: string) => resolveInside(root, rel);
  const episodes: SourceEpisode[] = [];
  if (version === "v3.0") {
    const metaDir = inside("meta/episodes");
    const metaFiles: string[] = [];
    for (const chunk of (await fs.readdir(metaDir).catch(() => [])).sort()) for (const f of (await fs.readdir(path.join(metaDir, chunk)).catch(() => [])).sort()) if (f.endsWith(".parquet")) metaFiles.push(path.join(metaDir, chunk, f));
    if (!metaFiles.length) throw new AppError("BAD_REQUEST", "meta/episodes/ has no parquet files");
    const metaRows = (await Promise.all(metaFiles.map(readParquetRows))).flat().sort((a, b) => num(a.episode_index) - num(b.episode_index));
    const dataCache = new Map<string, Map<number, Record<string, unknown>[]>>();
    for (const m of metaRows) {
      const index = num(m.episode_index);
      const rel = fill(dataPath, { chunk_index: num(m["data/chunk_index"]), file_index: num(m["data/file_index"]) });
      let byEpisode = dataCache.get(rel);
      if (!byEpisode) {
        byEpisode = new Map();
        const file = inside(rel);
        if (!(await exists(file))) throw new AppError("BAD_REQUEST", `${rel} is missing: the dataset's frames are needed to import it`);
        for (const r of await readParquetRows(file)) {
          const e = num(r.episode_index);
          if (!byEpisode.has(e)) byEpisode.set(e, []);
          byEpisode.get(e)!.push(r);
        }
        dataCache.set(rel, byEpisode);
      }
      const raw = (byEpisode.get(index) ?? []).sort((a, b) => num(a.frame_index) - num(b.frame_index));
      if (raw.length !== num(m.length)) throw new AppError("BAD_REQUEST", `Episode ${index}: ${rel} has ${raw.length} frames, meta/episodes says ${num(m.length)}`);
      const videos: SourceEpisode["videos"] = {};
      for (const camera of cameras) {
        const key = IMAGE_PREFIX + camera;
        const chunk = m[`videos/${key}/chunk_index`];
        if (!videoPath || chunk === undefined) {
          videos[camera] = null;
          continue;
        }
        const file = inside(fill(videoPath, { video_key: key, chunk_index: num(chunk), file_index: num(m[`videos/${key}/file_index`]) }));
        videos[camera] = (await exists(file)) ? { file, from: num(m[`videos/${key}/from_timestamp`]) } : null;
      }
      const importedStats: Record<string, FeatureStats> = {};
      for (const camera of cameras) {
        const s = statsFrom(m, IMAGE_PREFIX + camera);
        if (s) importedStats[camera] = s;
      }
      const tasks = Array.isArray(m.tasks) ? (m.tasks as unknown[]).map(String) : [];
      episodes.push({ index, task: tasks[0] ?? "", length: raw.length, rows: toRows(raw, extras), videos, importedStats });
    }
    return episodes;
  }
  // v2.1
  const lines = async (rel: string) =>
    (await fs.readFile(inside(rel), "utf8").catch(() => {
      throw new AppError("BAD_REQUEST", `${rel} is missing`);
    }))
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const metaRows = (await lines("meta/episodes.jsonl")).sort((a, b) => num(a.episode_index) - num(b.episode_index));
  const chunksSize = num(info.chunks_size ?? 1000) || 1000;
  for (const m of metaRows) {
    const index = num(m.episode_index);
    const chunk = Math.floor(index / chunksSize);
    const rel = fill(dataPath, { episode_chunk: chunk, episode_index: index });
    const file = inside(rel);
    if (!(await exists(file))) throw new AppError("BAD_REQUEST", `${rel} is missing: the dataset's frames are needed to import it`);
    const raw = (await readParquetRows(file)).sort((a, b) => num(a.frame_index) - num(b.frame_index));
    const videos: SourceEpisode["videos"] = {};
    for (const camera of cameras) {
      const video = videoPath ? inside(fill(videoPath, { episode_chunk: chunk, video_key: IMAGE_PREFIX + camera, episode_index: index })) : null;
      videos[camera] = video && (await exists(video)) ? { file: video, from: 0 } : null;
    }
    const tasks = Array.isArray(m.tasks) ? (m.tasks as unknown[]).map(String) : [];
    episodes.push({ index, task: tasks[0] ?? "", length: raw.length, rows: toRows(raw, extras), videos, importedStats: {} });
  }
  return episodes;
}

export interface ImportJobInput {
  datasetId: string;
  sourceDir: string;
  removeSource: boolean;
  settings: ImportSettings;
  progress: ProgressReporter;
  signal?: AbortSignal;
}

/** The import job: reads the source, stores each episode, writes the v3.0 dataset. Safe to run again. */
export async function runImport(db: Db, { datasetId, sourceDir, removeSource, settings, progress, signal }: ImportJobInput): Promise<{ episodes: number; missingVideos: string[] }> {
  const dataset = await db.dataset.findUnique({ where: { id: datasetId } });
  if (!dataset) throw new AppError("NOT_FOUND", "The dataset was deleted before it was imported");
  await progress.step("Reading the dataset", 0.02);
  const { root, version, info } = await findDatasetRoot(sourceDir);
  const features = (info.features ?? {}) as Record<string, { dtype?: string; shape?: number[]; names?: unknown }>;
  if (!features.action || !features["observation.state"]) throw new AppError("BAD_REQUEST", "The dataset has no action or observation.state feature; Gantry needs both");
  const fps = num(info.fps);
  if (!Number.isInteger(fps) || fps < 1) throw new AppError("BAD_REQUEST", "meta/info.json has no valid fps");
  const videoKeys = Object.keys(features).filter((k) => features[k].dtype === "video");
  const skipped = videoKeys.filter((k) => !k.startsWith(IMAGE_PREFIX) || !cameraNameSchema.safeParse(k.slice(IMAGE_PREFIX.length)).success);
  if (skipped.length) await progress.log(`Skipping video features Gantry cannot name as cameras: ${skipped.join(", ")}`, "warn");
  const cameras = videoKeys.filter((k) => !skipped.includes(k)).map((k) => k.slice(IMAGE_PREFIX.length));
  const builtIn = new Set(["action", "observation.state", "timestamp", "frame_index", "episode_index", "index", "task_index"]);
  const extras = Object.keys(features).filter((k) => !builtIn.has(k) && ["float32", "float64", "int64", "int32", "bool"].includes(String(features[k].dtype)) && (features[k].shape ?? [1]).reduce((a, b) => a * b, 1) === 1);

  const source = await readSourceEpisodes(root, version, info, cameras, extras);
  if (!source.length) throw new AppError("BAD_REQUEST", "The dataset has no episodes");
  const missing = cameras.filter((c) => source.every((e) => !e.videos[c]));
  const partial = cameras.filter((c) => !missing.includes(c) && source.some((e) => !e.videos[c]));
  if (partial.length) throw new AppError("BAD_REQUEST", `Some episodes lack their ${partial.join(", ")} video; import needs each camera's videos for every episode or for none`);
  const tools = cameras.length > missing.length ? mediaTools(settings) : null;

  // A run after a crash starts over: the episodes of an earlier attempt go first.
  await db.episode.deleteMany({ where: { datasetId } });
  await fs.rm(path.join(settings.DATASETS_DIR, ".store", datasetId, "episodes"), { recursive: true, force: true });
  const created: string[] = [];
  for (const [i, e] of source.entries()) {
    if (signal?.aborted) throw signal.reason ?? new Error("Cancelled");
    await progress.set(0.05 + 0.85 * (i / source.length), `Episode ${e.index}: ${e.length} frames`);
    const episode = await db.episode.create({
      data: { orgId: dataset.orgId, datasetId, number: e.index, status: "encoding", mode: "import", task: e.task, fps, length: e.length, cameras: cameras.filter((c) => !missing.includes(c)), datasetIndex: i },
    });
    created.push(episode.id);
    const dir = episodeStoreDir(settings, datasetId, episode.id);
    await fs.mkdir(dir, { recursive: true });
    const videos: StoredEpisode["videos"] = {};
    const stats: NonNullable<StoredEpisode["imageStats"]> = {};
    for (const camera of cameras) {
      const v = e.videos[camera];
      if (v && tools) {
        const target = storedVideoPath(dir, camera);
        await copyEpisodeVideo(tools, settings, v, e.length, fps, target, version, signal);
        const probe = await probeVideo(tools, target);
        if (probe.frames !== e.length) throw new AppError("BAD_REQUEST", `Episode ${e.index}'s ${camera} video has ${probe.frames} frames, the data ${e.length}`);
        videos[camera] = probe;
        const sampled = await sampleFramesRgb(tools, target, { width: probe.width, height: probe.height, indices: sampleIndices(e.length) });
        stats[camera] = imageStats(sampled.pixels, sampled.frames);
      } else if (e.importedStats[camera]) {
        stats[camera] = e.importedStats[camera];
      }
    }
    await writeStoredEpisode(dir, { fps, rows: e.rows, videos, imageStats: stats });
  }

  await progress.step("Writing the dataset", 0.92);
  const actionNames = flatNames(features.action.names);
  const stateNames = flatNames(features["observation.state"].names);
  const keptFeatures: Record<string, unknown> = { action: { ...features.action, names: actionNames }, "observation.state": { ...features["observation.state"], names: stateNames } };
  for (const c of cameras) keptFeatures[IMAGE_PREFIX + c] = features[IMAGE_PREFIX + c];
  await rebuildDataset(db, {
    datasetId,
    settings,
    signal,
    change: async (tx) => {
      await tx.dataset.update({
        where: { id: datasetId },
        data: { fps, robotType: typeof info.robot_type === "string" ? info.robot_type : null, importedVersion: version, missingVideos: missing.map((c) => IMAGE_PREFIX + c), features: featuresToJson(keptFeatures) as Prisma.InputJsonValue },
      });
      await tx.episode.updateMany({ where: { id: { in: created } }, data: { status: "ready" } });
    },
  });
  if (missing.length) await progress.log(`The dataset has no videos for ${missing.map((c) => IMAGE_PREFIX + c).join(", ")}: its joints are imported, its videos are missing`, "warn");
  if (removeSource) {
    await fs.rm(sourceDir, { recursive: true, force: true });
    await fs.rmdir(path.dirname(sourceDir)).catch(() => {}); // the upload's staging folder, when empty
  }
  return { episodes: source.length, missingVideos: missing };
}

/**
 * An episode's own MP4: v2.1 already has one per episode (copied as is); v3.0 concatenates
 * episodes, so the episode's frames are cut out and re-encoded with Gantry's settings.
 */
async function copyEpisodeVideo(tools: MediaTools, settings: EncodeEnv, v: { file: string; from: number }, frames: number, fps: number, target: string, version: string, signal?: AbortSignal): Promise<void> {
  const temp = tempPath(target);
  try {
    if (version === "v2.1") {
      await fs.copyFile(v.file, temp);
    } else {
      const { options } = await codecOptions(tools, { codec: settings.EDGE_ENCODE_CODEC, preset: settings.EDGE_ENCODE_PRESET, crf: settings.EDGE_ENCODE_CRF });
      await encodeSegment({ tools, input: v.file, fromS: v.from, frames, fps, output: temp, options, signal });
    }
    await fs.rename(temp, target);
  } finally {
    await fs.rm(temp, { force: true });
  }
}
