import fs from "node:fs/promises";
import path from "node:path";
import { AppError } from "../../errors";
import { concatVideos, type MediaTools } from "../../media/ffmpeg";
import { storedVideoPath, writeFileAtomic, type StoredEpisode } from "../episode-store";
import { huggingfaceMetadata, pandasTasksMetadata, parquetBytes, type Column } from "./parquet";
import { aggregateStats, scalarStats, vectorStats, type FeatureStats, QUANTILES } from "./stats";

// Writes a whole LeRobot v3.0 dataset folder from episodes, the way LeRobot 0.4+ lays it out:
//   meta/info.json, meta/stats.json, meta/tasks.parquet, meta/episodes/chunk-000/file-000.parquet,
//   data/chunk-XXX/file-XXX.parquet, videos/<key>/chunk-XXX/file-XXX.mp4 (episodes end to end).

export const CODEBASE_VERSION = "v3.0";
export const CHUNKS_SIZE = 1000;
export const DATA_FILES_SIZE_IN_MB = 100;
export const VIDEO_FILES_SIZE_IN_MB = 500;
export const DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
export const VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4";

export interface BuildEpisode {
  task: string;
  /** The episode's store folder (its MP4s). */
  dir: string;
  stored: StoredEpisode;
  /** Its files in the blob store (file name → sha256), when they are kept there. */
  files?: Record<string, { sha256: string }> | null;
}

export interface BuildInput {
  outDir: string;
  fps: number;
  robotType: string | null;
  /** Per-dimension names of action and observation.state (LeRobot shows them as joints). */
  names: { action: string[] | null; state: string[] | null };
  /** Cameras, in order; the feature key is observation.images.<camera> unless `keys` says otherwise. */
  cameras: string[];
  /**
   * Cameras whose videos are absent (an import without its videos): not written at all, since
   * a dataset must not declare video files it does not hold.
   */
  missingCameras?: string[];
  /** The dataset's own feature names (an import's), where they are not LeRobot's usual ones. */
  keys?: { action: string; state: string; video?: Record<string, string> };
  episodes: BuildEpisode[];
  tools: MediaTools;
  signal?: AbortSignal;
  /** The build this one replaces: what its video files were made of and which file held each episode. */
  previous?: PreviousBuild;
  /** Test hook: smaller file limits to exercise chunking. */
  limits?: { dataFileMb?: number; videoFileMb?: number };
}

export const videoKey = (camera: string) => `observation.images.${camera}`;

export interface FileSlot {
  chunk: number;
  file: number;
}

/** Which file held each episode of a build, episodes named by their store folder's name (older builds: its path). */
export interface BuildLayout {
  episodes: string[];
  data: FileSlot[];
  videos: Record<string, FileSlot[]>;
}

export interface PreviousBuild {
  dir: string;
  /** Each video file → what it was made of. */
  manifest: Record<string, string>;
  /** Absent for builds made before layouts were kept: those are packed afresh. */
  layout?: BuildLayout;
}

const nextSlot = (s: FileSlot): FileSlot => (s.file + 1 >= CHUNKS_SIZE ? { chunk: s.chunk + 1, file: 0 } : { chunk: s.chunk, file: s.file + 1 });

/** Assigns consecutive items to files from `start`, starting a new one when the current one is full. */
function assignFiles(sizes: number[], limitBytes: number, start: FileSlot = { chunk: 0, file: 0 }): FileSlot[] {
  const slots: FileSlot[] = [];
  let slot = start;
  let used = 0;
  for (const size of sizes) {
    if (used > 0 && used >= limitBytes) {
      slot = nextSlot(slot);
      used = 0;
    }
    slots.push(slot);
    used += size;
  }
  return slots;
}

/**
 * Files for the episodes of a build. When the build only appends to the one it replaces (its
 * first episodes are that build's, in order), those keep their files and the new ones start a
 * file of their own: no file of the earlier build is rewritten, so a copy of the dataset elsewhere
 * (a training host's cache) needs only the new files and the metadata. Any other change packs
 * every episode afresh.
 */
function placeFiles(dirs: string[], sizes: number[], limitBytes: number, previous: { episodes: string[]; slots: FileSlot[] | undefined } | null): FileSlot[] {
  const kept = previous?.slots;
  const isAppend = !!kept && kept.length === previous.episodes.length && kept.length > 0 && kept.length <= dirs.length && previous.episodes.every((d, i) => dirs[i] === path.basename(d));
  if (!isAppend) return assignFiles(sizes, limitBytes);
  const last = kept.reduce((a, b) => (b.chunk > a.chunk || (b.chunk === a.chunk && b.file > a.file) ? b : a));
  return [...kept.map((s) => ({ ...s })), ...assignFiles(sizes.slice(kept.length), limitBytes, nextSlot(last))];
}

const pad = (n: number) => String(n).padStart(3, "0");
const dataFile = (s: FileSlot) => `data/chunk-${pad(s.chunk)}/file-${pad(s.file)}.parquet`;
const videoFile = (key: string, s: FileSlot) => `videos/${key}/chunk-${pad(s.chunk)}/file-${pad(s.file)}.mp4`;
const f32 = (x: number) => Math.fround(x);

function groupBySlot<T>(items: T[], slots: FileSlot[]): { slot: FileSlot; items: { item: T; index: number }[] }[] {
  const groups: { slot: FileSlot; items: { item: T; index: number }[] }[] = [];
  items.forEach((item, index) => {
    const last = groups[groups.length - 1];
    if (last && last.slot.chunk === slots[index].chunk && last.slot.file === slots[index].file) last.items.push({ item, index });
    else groups.push({ slot: slots[index], items: [{ item, index }] });
  });
  return groups;
}

export interface BuildResult {
  totalFrames: number;
  features: Record<string, unknown>;
  /** Each video file → what it was made of (see `previous`). */
  manifest: Record<string, string>;
  layout: BuildLayout;
}

export async function buildLeRobotDataset(input: BuildInput): Promise<BuildResult> {
  const { outDir, fps, episodes } = input;
  if (episodes.length === 0) throw new AppError("BAD_REQUEST", "A dataset needs at least one episode");
  const first = episodes[0].stored;
  const stateWidth = first.rows[0]["observation.state"].length;
  const actionWidth = first.rows[0].action.length;
  // Extra per-frame values are kept when every episode has them.
  const extras = Object.keys(first.rows[0].extra).filter((k) => episodes.every((e) => e.stored.rows.every((r) => k in r.extra)));
  for (const [i, e] of episodes.entries()) {
    const r = e.stored.rows[0];
    if (r["observation.state"].length !== stateWidth || r.action.length !== actionWidth) {
      throw new AppError("BAD_REQUEST", `Episode ${i} has ${r["observation.state"].length} state and ${r.action.length} action values; the dataset has ${stateWidth} and ${actionWidth}`);
    }
  }
  const videoCameras = input.cameras.filter((c) => !input.missingCameras?.includes(c));
  const actionKey = input.keys?.action ?? "action";
  const stateKey = input.keys?.state ?? "observation.state";
  const keyOf = (camera: string) => input.keys?.video?.[camera] ?? videoKey(camera);
  const videoInfo: Record<string, StoredEpisode["videos"][string]> = {};
  for (const camera of videoCameras) {
    for (const [i, e] of episodes.entries()) {
      const v = e.stored.videos[camera];
      if (!v) throw new AppError("BAD_REQUEST", `Episode ${i} has no video for camera ${camera}, which the dataset's other episodes have`);
      const ref = (videoInfo[camera] ??= v);
      if (v.codec !== ref.codec || v.width !== ref.width || v.height !== ref.height || v.pixFmt !== ref.pixFmt) {
        throw new AppError("BAD_REQUEST", `Episode ${i}'s ${camera} video is ${v.codec} ${v.width}x${v.height} ${v.pixFmt}; the dataset's is ${ref.codec} ${ref.width}x${ref.height} ${ref.pixFmt}`);
      }
    }
  }

  // Tasks in order of first use.
  const tasks: string[] = [];
  const taskIndex = episodes.map((e) => {
    let i = tasks.indexOf(e.task);
    if (i < 0) i = tasks.push(e.task) - 1;
    return i;
  });

  // --- features, in LeRobot's order
  const features: Record<string, { dtype: string; shape: number[]; names: unknown; info?: unknown }> = {
    [actionKey]: { dtype: "float32", shape: [actionWidth], names: input.names.action ?? Array.from({ length: actionWidth }, (_, i) => `motor_${i}`) },
    [stateKey]: { dtype: "float32", shape: [stateWidth], names: input.names.state ?? Array.from({ length: stateWidth }, (_, i) => `motor_${i}`) },
  };
  for (const k of extras) features[k] = { dtype: "float32", shape: [1], names: null };
  for (const camera of videoCameras) {
    const v = videoInfo[camera];
    features[keyOf(camera)] = {
      dtype: "video",
      shape: v ? [v.height, v.width, 3] : [0, 0, 3],
      names: ["height", "width", "channels"],
      info: v
        ? { "video.height": v.height, "video.width": v.width, "video.codec": v.codec, "video.pix_fmt": v.pixFmt, "video.is_depth_map": false, "video.fps": fps, "video.channels": 3, has_audio: false }
        : null,
    };
  }
  for (const k of ["timestamp", "frame_index", "episode_index", "index", "task_index"]) features[k] = { dtype: k === "timestamp" ? "float32" : "int64", shape: [1], names: null };

  // --- data files
  const bytesPerRow = 4 * (stateWidth + actionWidth + extras.length + 1) + 8 * 4;
  const dataLimit = (input.limits?.dataFileMb ?? DATA_FILES_SIZE_IN_MB) * 1024 * 1024;
  // Episodes by their store folder's name (the episode's id), the same on every machine.
  const dirs = episodes.map((e) => path.basename(e.dir));
  const layout = input.previous?.layout;
  const dataSlots = placeFiles(dirs, episodes.map((e) => e.stored.rows.length * bytesPerRow), dataLimit, layout ? { episodes: layout.episodes, slots: layout.data } : null);
  const fromIndex: number[] = [];
  let totalFrames = 0;
  for (const e of episodes) {
    fromIndex.push(totalFrames);
    totalFrames += e.stored.rows.length;
  }
  for (const group of groupBySlot(episodes, dataSlots)) {
    const cols: Record<string, unknown[]> = { action: [], state: [], timestamp: [], frame_index: [], episode_index: [], index: [], task_index: [] };
    for (const k of extras) cols[k] = [];
    for (const { item, index } of group.items) {
      item.stored.rows.forEach((r, i) => {
        cols.action.push(r.action.map(f32));
        cols.state.push(r["observation.state"].map(f32));
        for (const k of extras) cols[k].push(f32(r.extra[k]));
        // LeRobot's recorder stamps frame i at i / fps, which is where the video has it.
        cols.timestamp.push(f32(i / fps));
        cols.frame_index.push(i);
        cols.episode_index.push(index);
        cols.index.push(fromIndex[index] + i);
        cols.task_index.push(taskIndex[index]);
      });
    }
    const columns: Column[] = [
      { name: actionKey, leaf: "FLOAT", depth: 1, data: cols.action },
      { name: stateKey, leaf: "FLOAT", depth: 1, data: cols.state },
      ...extras.map((k): Column => ({ name: k, leaf: "FLOAT", depth: 0, data: cols[k] })),
      { name: "timestamp", leaf: "FLOAT", depth: 0, data: cols.timestamp },
      { name: "frame_index", leaf: "INT64", depth: 0, data: cols.frame_index },
      { name: "episode_index", leaf: "INT64", depth: 0, data: cols.episode_index },
      { name: "index", leaf: "INT64", depth: 0, data: cols.index },
      { name: "task_index", leaf: "INT64", depth: 0, data: cols.task_index },
    ];
    const file = path.join(outDir, dataFile(group.slot));
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, parquetBytes(columns, { rowGroupSize: group.items.map((x) => x.item.stored.rows.length), kvMetadata: [huggingfaceMetadata(features, [actionKey, stateKey])] }));
  }

  // --- videos: each camera's episodes end to end; a file holding one episode is a hard link to it
  const videoLimit = (input.limits?.videoFileMb ?? VIDEO_FILES_SIZE_IN_MB) * 1024 * 1024;
  const videoSlots: Record<string, FileSlot[]> = {};
  const manifest: Record<string, string> = {};
  const videoFrom: Record<string, number[]> = {};
  for (const camera of videoCameras) {
    const key = keyOf(camera);
    const sizes = await Promise.all(episodes.map(async (e) => (await fs.stat(storedVideoPath(e.dir, camera))).size));
    const slots = (videoSlots[camera] = placeFiles(dirs, sizes, videoLimit, layout ? { episodes: layout.episodes, slots: layout.videos[key] } : null));
    videoFrom[camera] = [];
    for (const group of groupBySlot(episodes, slots)) {
      let t = 0;
      for (const { item } of group.items) {
        videoFrom[camera].push(t);
        t += item.stored.rows.length / fps;
      }
      const file = path.join(outDir, videoFile(key, group.slot));
      await fs.mkdir(path.dirname(file), { recursive: true });
      const inputs = group.items.map(({ item }) => storedVideoPath(item.dir, camera));
      // What the file is made of: the same episodes' same MP4s make the same file, so an earlier
      // build's copy is linked instead of joined again (appending touches only the last file).
      // An MP4 is known by its sha256 where the blob store keeps it (the same on every machine),
      // else by its file.
      const made = (await Promise.all(group.items.map(async ({ item }, i) => {
        const sha256 = item.files?.[`${camera}.mp4`]?.sha256;
        if (sha256) return `sha256:${sha256}`;
        const st = await fs.stat(inputs[i]);
        return `${inputs[i]}:${st.ino}:${st.size}:${st.mtimeMs}`;
      }))).join("|");
      const rel = videoFile(key, group.slot);
      manifest[rel] = made;
      const earlier = input.previous && input.previous.manifest[rel] === made ? path.join(input.previous.dir, rel) : null;
      if (earlier && (await fs.link(earlier, file).then(() => true, () => false))) continue;
      if (inputs.length === 1) await fs.link(inputs[0], file);
      else await concatVideos(input.tools, inputs, file, input.signal);
    }
  }

  // --- per-episode stats and meta/episodes
  const episodeStats: Record<string, FeatureStats>[] = episodes.map((e, index) => {
    const rows = e.stored.rows;
    const stats: Record<string, FeatureStats> = {
      [actionKey]: vectorStats(rows.map((r) => r.action.map(f32))),
      [stateKey]: vectorStats(rows.map((r) => r["observation.state"].map(f32))),
    };
    for (const k of extras) stats[k] = scalarStats(rows.map((r) => f32(r.extra[k])));
    for (const camera of videoCameras) {
      const s = e.stored.imageStats?.[camera];
      if (s) stats[keyOf(camera)] = s;
    }
    stats.timestamp = scalarStats(rows.map((_, i) => f32(i / fps)));
    stats.frame_index = scalarStats(rows.map((_, i) => i));
    stats.episode_index = scalarStats(rows.map(() => index));
    stats.index = scalarStats(rows.map((_, i) => fromIndex[index] + i));
    stats.task_index = scalarStats(rows.map(() => taskIndex[index]));
    return stats;
  });
  const statKeys = Object.keys(features).filter((k) => episodeStats.every((s) => s[k]));
  const isInt = (k: string) => features[k].dtype === "int64";
  const isImage = (k: string) => features[k].dtype === "video";
  const asImage = (v: number[]) => v.map((x) => [[x]]);
  const meta: Column[] = [
    { name: "episode_index", leaf: "INT64", depth: 0, data: episodes.map((_, i) => i) },
    { name: "tasks", leaf: "STRING", depth: 1, data: episodes.map((e) => [e.task]) },
    { name: "length", leaf: "INT64", depth: 0, data: episodes.map((e) => e.stored.rows.length) },
    { name: "data/chunk_index", leaf: "INT64", depth: 0, data: dataSlots.map((s) => s.chunk) },
    { name: "data/file_index", leaf: "INT64", depth: 0, data: dataSlots.map((s) => s.file) },
    { name: "dataset_from_index", leaf: "INT64", depth: 0, data: fromIndex },
    { name: "dataset_to_index", leaf: "INT64", depth: 0, data: episodes.map((e, i) => fromIndex[i] + e.stored.rows.length) },
  ];
  for (const camera of videoCameras) {
    const key = keyOf(camera);
    meta.push(
      { name: `videos/${key}/chunk_index`, leaf: "INT64", depth: 0, data: videoSlots[camera].map((s) => s.chunk) },
      { name: `videos/${key}/file_index`, leaf: "INT64", depth: 0, data: videoSlots[camera].map((s) => s.file) },
      { name: `videos/${key}/from_timestamp`, leaf: "DOUBLE", depth: 0, data: videoFrom[camera] },
      { name: `videos/${key}/to_timestamp`, leaf: "DOUBLE", depth: 0, data: episodes.map((e, i) => videoFrom[camera][i] + e.stored.rows.length / fps) },
    );
  }
  for (const k of statKeys) {
    for (const stat of ["min", "max", "mean", "std", "count", ...QUANTILES.map(([q]) => q)] as const) {
      const values = episodeStats.map((s) => s[k][stat]);
      if (stat === "count") meta.push({ name: `stats/${k}/${stat}`, leaf: "INT64", depth: 1, data: values });
      else if (isImage(k)) meta.push({ name: `stats/${k}/${stat}`, leaf: "DOUBLE", depth: 3, data: values.map(asImage) });
      else meta.push({ name: `stats/${k}/${stat}`, leaf: isInt(k) && (stat === "min" || stat === "max") ? "INT64" : "DOUBLE", depth: 1, data: values });
    }
  }
  meta.push({ name: "meta/episodes/chunk_index", leaf: "INT64", depth: 0, data: episodes.map(() => 0) }, { name: "meta/episodes/file_index", leaf: "INT64", depth: 0, data: episodes.map(() => 0) });
  await fs.mkdir(path.join(outDir, "meta/episodes/chunk-000"), { recursive: true });
  await fs.writeFile(path.join(outDir, "meta/episodes/chunk-000/file-000.parquet"), parquetBytes(meta));

  await fs.writeFile(
    path.join(outDir, "meta/tasks.parquet"),
    parquetBytes(
      [
        { name: "task_index", leaf: "INT64", depth: 0, data: tasks.map((_, i) => i) },
        { name: "__index_level_0__", leaf: "STRING", depth: 0, data: tasks },
      ],
      { kvMetadata: [pandasTasksMetadata()] },
    ),
  );

  // --- meta/stats.json: every feature over all episodes
  const stats: Record<string, Record<string, unknown>> = {};
  for (const k of statKeys) {
    const agg = aggregateStats(episodeStats.map((s) => s[k]));
    const shaped: Record<string, unknown> = {};
    for (const [stat, values] of Object.entries(agg)) shaped[stat] = isImage(k) && stat !== "count" ? asImage(values as number[]) : isInt(k) && (stat === "min" || stat === "max") ? (values as number[]).map(Math.round) : values;
    stats[k] = shaped;
  }
  await fs.writeFile(path.join(outDir, "meta/stats.json"), JSON.stringify(stats, null, 4));

  const info = {
    codebase_version: CODEBASE_VERSION,
    robot_type: input.robotType,
    total_episodes: episodes.length,
    total_frames: totalFrames,
    total_tasks: tasks.length,
    chunks_size: CHUNKS_SIZE,
    data_files_size_in_mb: input.limits?.dataFileMb ?? DATA_FILES_SIZE_IN_MB,
    video_files_size_in_mb: input.limits?.videoFileMb ?? VIDEO_FILES_SIZE_IN_MB,
    fps,
    splits: { train: `0:${episodes.length}` },
    data_path: DATA_PATH,
    video_path: videoCameras.length ? VIDEO_PATH : null,
    features,
  };
  await writeFileAtomic(path.join(outDir, "meta/info.json"), JSON.stringify(info, null, 4));
  return { totalFrames, features, manifest, layout: { episodes: dirs, data: dataSlots, videos: Object.fromEntries(videoCameras.map((c) => [keyOf(c), videoSlots[c]])) } };
}
