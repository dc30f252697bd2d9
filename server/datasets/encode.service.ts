import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setImmediate } from "node:timers/promises";
import type { Db } from "../db";
import { inParallel } from "../process/in-parallel";
import { AppError, isAppError } from "../errors";
import type { ProgressReporter } from "../jobs/progress";
import { codecOptions, encodeFrames, mediaTools, probeVideo, sampleFramesRgb, type EncodeSettings, type MediaTools, type VideoProbe } from "../media/ffmpeg";
import { probeOwnMp4 } from "../media/mp4-index";
import { checkPngEnds, checkPngFile } from "../media/png";
import type { BlobStore } from "../storage/blob-store";
import { rawEpisodeDir } from "./datasets.schemas";
import { storeEpisodeFiles } from "./episode-files";
import { episodeStoreDir, storedVideoPath, tempPath, writeStoredEpisode, type StoredEpisode } from "./episode-store";
import { imageStats, sampleIndices } from "./lerobot/stats";
import { findRawEpisode, fpsFromRows, listFrames, readFrameRows, removeRawEpisode } from "./raw-episode";
import { fetchRawEpisode, forgetRawFiles, rawFilesOf } from "./raw-files";

export interface EncodeEnv {
  EDGE_UPLOAD_DIR: string;
  DATASETS_DIR: string;
  FFMPEG_PATH?: string;
  FFPROBE_PATH?: string;
  EDGE_ENCODE_CODEC: "h264" | "av1";
  EDGE_ENCODE_PRESET: string;
  EDGE_ENCODE_CRF: number;
}

/** Frames checked in one turn of the event loop (a few hundred microseconds). */
const CHECK_BATCH = 50;

export interface EncodeCameraInput {
  tools: MediaTools;
  camera: string;
  frames: string[];
  fps: number;
  output: string;
  settings: EncodeSettings;
  /** ffmpeg threads; default: ffmpeg's own choice (all cores). */
  threads?: number;
  signal?: AbortSignal;
  onFrames?: (frames: number) => void;
}

/**
 * The image2 pattern (`%d` or `%0Nd`) that names exactly `frames`, in order from 0, or null
 * when their names follow no one pattern (mixed zero padding, other folders).
 */
export function framePattern(frames: string[]): string | null {
  const first = /^(.*?)(\d+)\.png$/.exec(frames[0] ?? "");
  if (!first || Number(first[2]) !== 0) return null;
  const [, prefix, digits] = first;
  const width = digits.length;
  for (const [i, f] of frames.entries()) {
    if (f !== `${prefix}${String(i).padStart(width, "0")}.png`) return null;
  }
  return `${prefix.replaceAll("%", "%%")}${width > 1 ? `%0${width}d` : "%d"}.png`;
}

/**
 * One camera's PNG frames → MP4, checked from its index (ffprobe when that is not enough). ffmpeg reads the frames where they are
 * when one numbered pattern names them all (the usual case); otherwise they are linked under
 * sequential names first. The MP4 is written to a temporary name and renamed only once it has
 * every frame, so a killed worker never leaves a half file under the real name.
 */
export async function encodeCamera({ tools, camera, frames, fps, output, settings, threads, signal, onFrames }: EncodeCameraInput): Promise<VideoProbe> {
  const direct = framePattern(frames);
  const linkDir = direct ? null : await fs.mkdtemp(path.join(path.dirname(output), `.frames-${camera}-`));
  const temp = tempPath(output);
  try {
    if (linkDir) await Promise.all(frames.map((f, i) => fs.symlink(f, path.join(linkDir, `${String(i).padStart(7, "0")}.png`))));
    const { options } = await codecOptions(tools, settings);
    // The cheap check runs beside ffmpeg: a truncated or corrupted frame is named, and ffmpeg stopped.
    const check = new AbortController();
    const onAbort = () => check.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const checking = (async () => {
      // A batch at a time, between turns of the event loop (ffmpeg is started first).
      for (let at = 0; at < frames.length; at += CHECK_BATCH) {
        await setImmediate();
        if (check.signal.aborted) return;
        for (let i = at; i < Math.min(at + CHECK_BATCH, frames.length); i++) {
          const problem = checkPngEnds(frames[i]);
          if (problem) {
            const error = new AppError("BAD_REQUEST", `Camera ${camera}: frame ${i} (${path.basename(frames[i])}) ${problem}`);
            check.abort(error);
            throw error;
          }
        }
      }
    })();
    checking.catch(() => {});
    try {
      await encodeFrames({ tools, pattern: direct ?? path.join(linkDir!, "%07d.png"), fps, output: temp, options: threads ? [...options, "-threads", String(threads)] : options, signal: check.signal, onFrames });
    } catch (error) {
      if (check.signal.reason instanceof AppError) throw check.signal.reason;
      if (signal?.aborted) throw error;
      // ffmpeg failed on a frame the quick check passed: check every chunk and decode each to name it.
      for (const [i, f] of frames.entries()) {
        const problem = await checkPngFile(f, { inflate: true });
        if (problem) throw new AppError("BAD_REQUEST", `Camera ${camera}: frame ${i} (${path.basename(f)}) ${problem}`);
      }
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    await checking;
    // Read from the file's own index; ffprobe only when that cannot say for certain.
    const probe = (await probeOwnMp4(temp)) ?? (await probeVideo(tools, temp));
    verifyProbe(camera, probe, frames.length, fps);
    await fs.rename(temp, output);
    return probe;
  } finally {
    if (linkDir) await fs.rm(linkDir, { recursive: true, force: true });
    await fs.rm(temp, { force: true });
  }
}

/** The video must hold every frame at the episode's rate. */
function verifyProbe(camera: string, probe: VideoProbe, frames: number, fps: number): void {
  if (probe.frames !== frames) throw new AppError("INTERNAL", `Camera ${camera}: the encoded video has ${probe.frames} frames, expected ${frames}`);
  const expected = frames / fps;
  if (Math.abs(probe.durationS - expected) > 1.5 / fps) throw new AppError("INTERNAL", `Camera ${camera}: the encoded video lasts ${probe.durationS.toFixed(3)} s, expected ${expected.toFixed(3)} s`);
}

/**
 * Encodes several cameras' frames into `dir`/<camera>.mp4, in parallel up to the core count
 * (each ffmpeg gets its share of the cores as threads, so they do not fight over them).
 * `onFrames` gets the frames encoded so far over all cameras.
 */
export async function encodeCameras({ tools, cameras, fps, dir, settings, signal, onFrames }: { tools: MediaTools; cameras: { camera: string; frames: string[] }[]; fps: number; dir: string; settings: EncodeSettings; signal?: AbortSignal; onFrames?: (frames: number) => void }): Promise<VideoProbe[]> {
  const cores = Math.max(1, os.availableParallelism());
  const done = new Array<number>(cameras.length).fill(0);
  return inParallel(cameras, cores, signal, (c, i, cameraSignal) =>
    encodeCamera({
      tools,
      camera: c.camera,
      frames: c.frames,
      fps,
      output: storedVideoPath(dir, c.camera),
      settings,
      threads: cameras.length > 1 ? Math.max(1, Math.floor(cores / Math.min(cameras.length, cores))) : undefined,
      signal: cameraSignal,
      onFrames: (n) => {
        done[i] = n;
        onFrames?.(done.reduce((a, b) => a + b, 0));
      },
    }),
  );
}

export interface EncodeEpisodeInput {
  episodeId: string;
  settings: EncodeEnv;
  progress: ProgressReporter;
  signal?: AbortSignal;
  /** The episode is marked failed when this attempt fails and no retry follows. */
  isLastAttempt: boolean;
  /** Where the episode's files are kept once encoded (the folder is their cache). */
  blobs: BlobStore;
  /** Adds the encoded episode to its dataset (the builder). */
  commit: (db: Db, episodeId: string, signal?: AbortSignal) => Promise<void>;
}

/**
 * The encoding job: checks the raw episode, encodes each camera (in parallel up to the core
 * count), stores the result, commits it to the dataset and only then deletes the raw files.
 * Running it again after a crash picks up where it stood: a committed episode only has its
 * raw files cleaned up.
 */
export async function encodeEpisode(db: Db, input: EncodeEpisodeInput): Promise<{ frames: number; cameras: string[] }> {
  const { episodeId, settings, progress, signal } = input;
  const episode = await db.episode.findUnique({ where: { id: episodeId }, include: { dataset: true } });
  if (!episode) throw new AppError("NOT_FOUND", "The episode was deleted before it was encoded");
  // The raw files where the web process left them, or (handed over through the bucket) in a
  // folder of this machine's own, fetched below.
  let rawRoot = rawEpisodeDir(settings, episode.dataset.orgId, episode.dataset.repoId);
  const raw = () => findRawEpisode(rawRoot, episode.number, episode.mode as "edge" | "local");
  if (episode.status === "ready") {
    await progress.step("Already in the dataset; removing the raw files", 0.95);
    if (!rawFilesOf(episode)) await removeRawEpisode(await raw().catch(() => null));
    await forgetRawFiles(db, settings, episode);
    return { frames: episode.length ?? 0, cameras: episode.cameras };
  }
  try {
    if (rawFilesOf(episode)) {
      await progress.step("Fetching the raw episode", 0.005);
      let reported = 0;
      const { root, fetched } = await fetchRawEpisode(input.blobs, settings, episode, {
        signal,
        onFile: async (done, total) => {
          if (done < total && Date.now() - reported < 500) return;
          reported = Date.now();
          await progress.set(0.005 + 0.005 * (done / total), `${done} of ${total} files`);
        },
      });
      rawRoot = root;
      if (fetched) await progress.log(`Fetched ${fetched} raw file${fetched === 1 ? "" : "s"} from the blob store`);
    }
    await progress.step("Checking the raw episode", 0.01);
    const found = await raw();
    const rows = await readFrameRows(found.dataFile);
    const fps = episode.fps ?? fpsFromRows(rows) ?? episode.dataset.fps ?? 30;
    if (episode.dataset.fps && episode.dataset.fps !== fps) throw new AppError("BAD_REQUEST", `Episode ${episode.number} was recorded at ${fps} fps but ${episode.dataset.repoId} is at ${episode.dataset.fps} fps`);
    const tools = mediaTools(settings);
    const codec = await codecOptions(tools, { codec: settings.EDGE_ENCODE_CODEC, preset: settings.EDGE_ENCODE_PRESET, crf: settings.EDGE_ENCODE_CRF });
    if (settings.EDGE_ENCODE_CODEC === "av1" && codec.codec !== "av1") await progress.log("This ffmpeg has no libsvtav1: encoding H.264 instead", "warn");

    const dir = episodeStoreDir(settings, episode.datasetId, episode.id);
    await fs.mkdir(dir, { recursive: true });
    await removeLeftovers(dir);
    const videos: StoredEpisode["videos"] = {};
    if (episode.mode === "edge") {
      const cameraFrames = await Promise.all(found.cameras.map(async (c) => ({ camera: c.name, frames: await listFrames(c.framesDir!, c.name) })));
      for (const c of cameraFrames) {
        if (c.frames.length !== rows.length) throw new AppError("BAD_REQUEST", `Camera ${c.camera} has ${c.frames.length} frames but the data file has ${rows.length} rows${c.frames.length < rows.length ? `: frame ${c.frames.length} is missing` : ""}`);
      }
      // A camera an earlier attempt of this registration finished (checked, complete, renamed
      // into place after the episode was last changed) is not encoded again.
      const reused = new Map<string, VideoProbe>();
      for (const c of cameraFrames) {
        const file = storedVideoPath(dir, c.camera);
        const stat = await fs.stat(file).catch(() => null);
        if (!stat || stat.mtime < episode.updatedAt) continue;
        const probe = await probeVideo(tools, file).catch(() => null);
        if (probe && probe.frames === rows.length) reused.set(c.camera, probe);
      }
      if (reused.size) await progress.log(`Keeping the ${[...reused.keys()].join(", ")} video${reused.size === 1 ? "" : "s"} an earlier attempt finished`);
      const toEncode = cameraFrames.filter((c) => !reused.has(c.camera));
      const total = rows.length * toEncode.length;
      let lastReport = 0;
      // Written in order, and all before the next step: none lands after a later report.
      let reports: Promise<unknown> = Promise.resolve();
      await progress.step(`Encoding ${toEncode.length} camera${toEncode.length === 1 ? "" : "s"} (${codec.encoder}, ${rows.length} frames at ${fps} fps)`, 0.02);
      const encoded = await encodeCameras({
        tools,
        cameras: toEncode,
        fps,
        dir,
        settings: encodeSettingsFrom(settings),
        signal,
        onFrames: (encoded) => {
          const now = Date.now();
          if (now - lastReport < 500) return;
          lastReport = now;
          reports = reports.then(() => progress.set(0.02 + 0.88 * (encoded / total), `${encoded} of ${total} frames encoded`)).catch(() => {});
        },
      }).finally(() => reports);
      toEncode.forEach((c, i) => (videos[c.camera] = encoded[i]));
      for (const [camera, probe] of reused) videos[camera] = probe;
    } else {
      await progress.step("Checking the agent's videos", 0.3);
      for (const c of found.cameras) {
        const probe = await probeVideo(tools, c.video!);
        if (probe.frames !== rows.length) throw new AppError("BAD_REQUEST", `Camera ${c.name}: ${path.basename(c.video!)} has ${probe.frames} frames but the data file has ${rows.length} rows`);
        const target = storedVideoPath(dir, c.name);
        const temp = tempPath(target);
        await fs.copyFile(c.video!, temp);
        await fs.rename(temp, target);
        videos[c.name] = probe;
      }
    }
    await progress.step("Computing image statistics", 0.9);
    const stats: NonNullable<StoredEpisode["imageStats"]> = {};
    await inParallel(Object.entries(videos), Math.max(1, os.availableParallelism()), signal, async ([camera, v]) => {
      const sampled = await sampleFramesRgb(tools, storedVideoPath(dir, camera), { width: v.width, height: v.height, indices: sampleIndices(rows.length) });
      stats[camera] = imageStats(sampled.pixels, sampled.frames);
    });
    await writeStoredEpisode(dir, { fps, rows, videos, imageStats: stats });
    await db.episode.update({ where: { id: episode.id }, data: { fps, length: rows.length, cameras: Object.keys(videos).sort() } });
    await progress.step("Storing the episode's files", 0.91);
    await storeEpisodeFiles(db, input.blobs, { episodeId: episode.id, dir, signal });

    await progress.step("Adding the episode to the dataset", 0.92);
    await input.commit(db, episode.id, signal);
    await progress.step("Removing the raw files", 0.98);
    await removeRawEpisode(found);
    await forgetRawFiles(db, settings, episode);
    return { frames: rows.length, cameras: Object.keys(videos) };
  } catch (error) {
    const permanent = isAppError(error) && error.code !== "INTERNAL";
    if ((permanent || input.isLastAttempt) && !signal?.aborted) {
      const message = error instanceof Error ? error.message : String(error);
      await db.episode.updateMany({ where: { id: episode.id, status: "encoding" }, data: { status: "failed", error: message } });
    }
    throw error;
  }
}

/**
 * Half-written videos and frame-link folders an earlier attempt left when its worker was
 * killed outright (only one attempt of an episode runs at a time, so none is in use).
 */
async function removeLeftovers(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    if (name.endsWith(".tmp") || name.startsWith(".frames-")) await fs.rm(path.join(dir, name), { recursive: true, force: true });
  }
}

export function encodeSettingsFrom(settings: EncodeEnv): EncodeSettings {
  return { codec: settings.EDGE_ENCODE_CODEC, preset: settings.EDGE_ENCODE_PRESET, crf: settings.EDGE_ENCODE_CRF };
}
