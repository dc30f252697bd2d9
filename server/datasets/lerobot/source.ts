import fs from "node:fs/promises";
import path from "node:path";
import { AppError } from "../../errors";
import { refuseNulCharacters } from "../../security/nul-characters";
import { resolveInside } from "../../security/paths";
import { episodeNumberSchema, type FeatureMap } from "../datasets.schemas";
import type { FrameRow } from "../raw-episode";
import { readParquetFile } from "./parquet-read";

// Reads an existing LeRobot dataset, v3.0 (meta/episodes/*.parquet, episodes end to end in
// shared data and video files) or v2.1 and v2.0 (meta/episodes.jsonl, one parquet and one MP4 per
// episode), under the feature names its feature map gives. A file that cannot be read is
// named, as a BAD_REQUEST: reading it again will not help.

export type SourceVersion = "v2.1" | "v3.0";

export interface SourceEpisode {
  index: number;
  task: string;
  length: number;
  rows: FrameRow[];
  /** camera → where its frames are, or null when the dataset lacks that video. */
  videos: Record<string, { file: string; from: number } | null>;
}

/** How many folders down a dataset's root may be: an archive of ~/.cache/huggingface/lerobot/<user>/<repo> made from the home folder holds it six down. */
export const ROOT_SEARCH_DEPTH = 8;
/** Folders looked into at most while searching, so a folder of thousands of files is not walked whole. */
const ROOT_SEARCH_FOLDERS = 2_000;

/**
 * Finds the dataset root, the folder holding meta/info.json: the folder itself, or the one folder
 * up to ROOT_SEARCH_DEPTH below it that does (an archive often wraps the dataset in the folders
 * it was made from), looked for level by level. Several datasets at the same depth are refused by
 * name: which one was meant is not ours to guess. A search that reaches ROOT_SEARCH_FOLDERS
 * stops and says so rather than answer from a level it did not finish.
 */
export async function findDatasetRoot(dir: string): Promise<{ root: string; version: SourceVersion; info: Record<string, unknown> }> {
  let level = [dir];
  let looked = 0;
  for (let depth = 0; depth <= ROOT_SEARCH_DEPTH && level.length > 0; depth++) {
    if (looked + level.length > ROOT_SEARCH_FOLDERS) {
      throw new AppError("BAD_REQUEST", `No meta/info.json found in the ${looked} folders looked into before the search stopped (it looks into ${ROOT_SEARCH_FOLDERS} at most); give the dataset's own folder, the one holding meta/info.json`);
    }
    looked += level.length;
    const found: string[] = [];
    const next: string[] = [];
    for (const folder of level) {
      if (await isFile(path.join(folder, "meta/info.json"))) {
        found.push(folder);
        continue; // a dataset holds no other one
      }
      const entries = await fs.readdir(folder, { withFileTypes: true }).catch(() => []);
      for (const e of entries) if (e.isDirectory()) next.push(path.join(folder, e.name));
    }
    if (found.length > 1) {
      const names = found.slice(0, 5).map((f) => path.relative(dir, f) || ".");
      throw new AppError("BAD_REQUEST", `This holds ${found.length} LeRobot datasets (${names.join(", ")}${found.length > 5 ? ", …" : ""}); import or score one dataset at a time`);
    }
    if (found.length === 1) return readRoot(found[0]);
    level = next.sort();
  }
  throw new AppError("BAD_REQUEST", `No meta/info.json found in this folder or up to ${ROOT_SEARCH_DEPTH} folders below it: this is not a LeRobot dataset`);
}

async function isFile(file: string): Promise<boolean> {
  return (await fs.stat(file).catch(() => null))?.isFile() === true;
}

async function readRoot(root: string): Promise<{ root: string; version: SourceVersion; info: Record<string, unknown> }> {
  const text = await fs.readFile(path.join(root, "meta/info.json"), "utf8");
  let info: Record<string, unknown>;
  try {
    info = JSON.parse(text);
  } catch {
    throw new AppError("BAD_REQUEST", "meta/info.json is not JSON");
  }
  const declared = String(info.codebase_version ?? "");
  // v2.0 has v2.1's layout; v2.1 only added per-episode statistics, which an import computes itself.
  const version = declared === "v2.0" ? "v2.1" : declared;
  if (version !== "v2.1" && version !== "v3.0") throw new AppError("BAD_REQUEST", `This is a LeRobot ${declared || "(unversioned)"} dataset; Gantry imports v2.0, v2.1 and v3.0 (convert older ones with LeRobot first)`);
  return { root, version, info };
}

const num = (v: unknown) => (typeof v === "bigint" ? Number(v) : Number(v));

/** Every row of a parquet file; a damaged or cut-short file is named, and not worth retrying. */
export async function readParquetRows(root: string, rel: string): Promise<Record<string, unknown>[]> {
  const file = resolveInside(root, rel);
  try {
    return await readParquetFile(file);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const isCut = /PAR1|too short|footer|out of bounds|offset/i.test(reason);
    throw new AppError(
      "BAD_REQUEST",
      isCut
        ? `${rel} is cut short or damaged: it does not end as a parquet file does (${reason}). Copy or upload the dataset again; this file is incomplete`
        : `${rel} could not be read as parquet (${reason}). Copy or upload the dataset again, or check that the file is a LeRobot parquet file`,
      { cause: error },
    );
  }
}

function toRows(raw: Record<string, unknown>[], map: Pick<FeatureMap, "action" | "state">, extras: string[]): FrameRow[] {
  return raw.map((r, i) => {
    const vector = (v: unknown) => Array.from((v ?? []) as ArrayLike<unknown>, num);
    const extra: Record<string, number> = {};
    for (const k of extras) {
      const v = r[k];
      extra[k] = Array.isArray(v) || ArrayBuffer.isView(v) ? num((v as ArrayLike<unknown>)[0]) : num(v);
    }
    return { frame_index: i, timestamp: num(r.timestamp ?? i), "observation.state": vector(r[map.state]), action: vector(r[map.action]), extra };
  });
}

const fill = (pattern: string, values: Record<string, string | number>) =>
  pattern.replace(/\{(\w+)(?::0?(\d+)d)?\}/g, (_, key: string, width?: string) => {
    const v = values[key];
    return typeof v === "number" && width ? String(v).padStart(Number(width), "0") : String(v);
  });

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(() => true, () => false);
}

/** Reads every episode of a v3.0 or v2.1 dataset. */
export async function readSourceEpisodes(root: string, version: SourceVersion, info: Record<string, unknown>, map: FeatureMap, extras: string[]): Promise<SourceEpisode[]> {
  const videoPath = typeof info.video_path === "string" ? info.video_path : null;
  const dataPath = String(info.data_path ?? "");
  const inside = (rel: string) => resolveInside(root, rel);
  const episodes: SourceEpisode[] = [];
  if (version === "v3.0") {
    const metaDir = inside("meta/episodes");
    const metaFiles: string[] = [];
    for (const chunk of (await fs.readdir(metaDir).catch(() => [])).sort()) for (const f of (await fs.readdir(path.join(metaDir, chunk)).catch(() => [])).sort()) if (f.endsWith(".parquet")) metaFiles.push(`meta/episodes/${chunk}/${f}`);
    if (!metaFiles.length) throw new AppError("BAD_REQUEST", "meta/episodes/ has no parquet files");
    const metaRows = (await Promise.all(metaFiles.map((rel) => readParquetRows(root, rel)))).flat().sort((a, b) => num(a.episode_index) - num(b.episode_index));
    const dataCache = new Map<string, Map<number, Record<string, unknown>[]>>();
    for (const m of metaRows) {
      const index = num(m.episode_index);
      const rel = fill(dataPath, { chunk_index: num(m["data/chunk_index"]), file_index: num(m["data/file_index"]) });
      let byEpisode = dataCache.get(rel);
      if (!byEpisode) {
        byEpisode = new Map();
        if (!(await exists(inside(rel)))) throw new AppError("BAD_REQUEST", `${rel} is missing: the dataset's frames are needed to import it`);
        for (const r of await readParquetRows(root, rel)) {
          const e = num(r.episode_index);
          if (!byEpisode.has(e)) byEpisode.set(e, []);
          byEpisode.get(e)!.push(r);
        }
        dataCache.set(rel, byEpisode);
      }
      const raw = (byEpisode.get(index) ?? []).sort((a, b) => num(a.frame_index) - num(b.frame_index));
      if (raw.length !== num(m.length)) throw new AppError("BAD_REQUEST", `Episode ${index}: ${rel} has ${raw.length} frames, meta/episodes says ${num(m.length)}`);
      const videos: SourceEpisode["videos"] = {};
      for (const { camera, key } of map.cameras) {
        const chunk = m[`videos/${key}/chunk_index`];
        if (!videoPath || chunk === undefined || chunk === null) {
          videos[camera] = null;
          continue;
        }
        const file = inside(fill(videoPath, { video_key: key, chunk_index: num(chunk), file_index: num(m[`videos/${key}/file_index`]) }));
        videos[camera] = (await exists(file)) ? { file, from: num(m[`videos/${key}/from_timestamp`]) } : null;
      }
      const tasks = Array.isArray(m.tasks) ? (m.tasks as unknown[]).map(String) : [];
      episodes.push({ index, task: tasks[0] ?? "", length: raw.length, rows: toRows(raw, map, extras), videos });
    }
    return checkEpisodes(episodes, "meta/episodes/");
  }
  // v2.1
  const lines = async (rel: string) =>
    (await fs.readFile(inside(rel), "utf8").catch(() => {
      throw new AppError("BAD_REQUEST", `${rel} is missing`);
    }))
      .split("\n")
      .filter((l) => l.trim())
      .map((l, i) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          throw new AppError("BAD_REQUEST", `Line ${i + 1} of ${rel} is not JSON; the file may be cut short`);
        }
      });
  const metaRows = (await lines("meta/episodes.jsonl")).sort((a, b) => num(a.episode_index) - num(b.episode_index));
  const chunksSize = num(info.chunks_size ?? 1000) || 1000;
  for (const m of metaRows) {
    const index = num(m.episode_index);
    const chunk = Math.floor(index / chunksSize);
    const rel = fill(dataPath, { episode_chunk: chunk, episode_index: index });
    if (!(await exists(inside(rel)))) throw new AppError("BAD_REQUEST", `${rel} is missing: the dataset's frames are needed to import it`);
    const raw = (await readParquetRows(root, rel)).sort((a, b) => num(a.frame_index) - num(b.frame_index));
    const videos: SourceEpisode["videos"] = {};
    for (const { camera, key } of map.cameras) {
      const video = videoPath ? inside(fill(videoPath, { episode_chunk: chunk, video_key: key, episode_index: index })) : null;
      videos[camera] = video && (await exists(video)) ? { file: video, from: 0 } : null;
    }
    const tasks = Array.isArray(m.tasks) ? (m.tasks as unknown[]).map(String) : [];
    episodes.push({ index, task: tasks[0] ?? "", length: raw.length, rows: toRows(raw, map, extras), videos });
  }
  return checkEpisodes(episodes, "meta/episodes.jsonl");
}

/**
 * What an import keeps of the dataset's own numbers, checked before anything is stored: each
 * episode's index a whole number in range and listed once, its task text Postgres can hold,
 * and its states and actions numbers.
 */
function checkEpisodes(episodes: SourceEpisode[], meta: string): SourceEpisode[] {
  const seen = new Set<number>();
  for (const e of episodes) {
    if (!episodeNumberSchema.safeParse(e.index).success) throw new AppError("BAD_REQUEST", `${meta} lists an episode_index of ${String(e.index)}; an episode's index is a whole number from 0 to 10000000`);
    if (seen.has(e.index)) throw new AppError("BAD_REQUEST", `${meta} lists episode ${e.index} twice; each episode_index may appear once`);
    seen.add(e.index);
    refuseNulCharacters(e.task, `Episode ${e.index}'s task`);
    for (const row of e.rows) {
      for (const key of ["observation.state", "action"] as const) {
        if (!row[key].every(Number.isFinite)) throw new AppError("BAD_REQUEST", `Episode ${e.index}, frame ${row.frame_index}: ${key} holds a value that is not a finite number; the dataset's frames must be numbers`);
      }
    }
  }
  return episodes;
}

/** How many episodes meta says the dataset has (info.json's total, else counted), for an inspection. */
export function declaredEpisodes(info: Record<string, unknown>): number | null {
  const n = num(info.total_episodes);
  return Number.isInteger(n) && n >= 0 ? n : null;
}
