import path from "node:path";
import { AppError } from "../errors";
import { probeVideo, type MediaTools, type VideoProbe } from "../media/ffmpeg";
import { killOwned, spawnOwned } from "../process/owned-child";
import type { EvalDataset, MetricOutput, SampleFrame } from "./evaluation.schemas";
import { scoreDiversity, type EmbeddingSums } from "./diversity";
import { describeSampleFrames, frameKeeper } from "./sample-frames";
import { episodeVideoKey, readCachedVideo, writeCachedVideo, type CachedVideo } from "./episode-cache";
import { scoreFidelity } from "./fidelity";
import { COLOUR_LEVELS, measureFrame, meanAbsDiff, THUMB_SIDE, type CameraSamples } from "./frame-stats";

// The two visual metrics (h, v) read a few frames of each episode's video. Videos are read file
// by file: LeRobot v3.0 keeps many episodes end to end in one MP4, so one ffmpeg decodes a run of
// the file once and keeps only the frames asked for (ffmpeg's select filter), instead of seeking
// once per episode or per frame, which decodes the frames up to each seek point again and again.

/** Longest side of a sampled frame: enough for blur and exposure, small enough to keep nothing but numbers. */
export const SAMPLE_MAX_SIDE = 160;
/**
 * Frames wanted from one ffmpeg run: ffmpeg's expression parser refuses sums of about a hundred
 * terms, and a long file is better read in runs that each start with a seek near their first frame.
 */
const FRAMES_PER_RUN = 240;
/** Video files read at once: ffmpeg's start-up (a tenth of a second on one core) dominates a one-episode file, and two files at once keep both cores of a small machine busy. */
const FILES_AT_ONCE = 2;
/** Terms summed inside one pair of brackets in the select expression (nesting keeps it shallow). */
const SELECT_FANOUT = 16;

/** One sampled frame, packed RGB. */
export interface SampledFrame {
  episode: number;
  camera: string;
  /** Which sample of this episode's video (0-based) and how many were asked for. */
  sample: number;
  of: number;
  /** The frame's index in the episode (its row in the episode's data). */
  frame: number;
  width: number;
  height: number;
  rgb: Uint8Array;
}

export interface SamplingResult {
  /** ffprobe's view of each video file that could be read. */
  probes: Map<string, VideoProbe>;
  /** Episode videos that are missing or could not be read, and why. */
  problems: { episode: number; camera: string; reason: string }[];
}

interface Span {
  episode: number;
  camera: string;
  file: string;
  from: number;
  /** Episode frame indices to sample, ascending. */
  frames: number[];
  delivered: number;
}

/** `count` frame indices evenly spread over an episode of `length` frames (the middle of each equal part). */
export function sampleIndices(length: number, count: number): number[] {
  const picked = Array.from({ length: Math.min(count, length) }, (_, i) => Math.floor(((i + 0.5) * length) / Math.min(count, length)));
  return [...new Set(picked)];
}

/** `eq(n,a)+eq(n,b)+…` nested in brackets of SELECT_FANOUT terms, which ffmpeg parses at any length. */
function selectExpression(frames: number[]): string {
  let terms = frames.map((n) => `eq(n\\,${n})`);
  while (terms.length > SELECT_FANOUT) {
    const grouped: string[] = [];
    for (let i = 0; i < terms.length; i += SELECT_FANOUT) grouped.push(`(${terms.slice(i, i + SELECT_FANOUT).join("+")})`);
    terms = grouped;
  }
  return terms.join("+");
}

/** A frame size to decode to: with `isCover` the frame fills it exactly (scaled to cover it, then centre-cropped, as image encoders are fed), otherwise the frame is scaled whole. */
interface FrameSize {
  width: number;
  height: number;
  isCover?: boolean;
}

function scaledSize(probe: VideoProbe, maxSide: number): FrameSize {
  const scale = Math.min(1, maxSide / Math.max(probe.width, probe.height, 1));
  return { width: Math.max(2, Math.round((probe.width * scale) / 2) * 2), height: Math.max(2, Math.round((probe.height * scale) / 2) * 2) };
}

/**
 * Decodes the frames `wanted` (ascending indices in the file) in one ffmpeg run that seeks to the
 * first of them, handing each to `onFrame` as it arrives; resolves with how many came (fewer when
 * the file ends early).
 */
function decodeRun(tools: MediaTools, file: string, probe: VideoProbe, wanted: number[], size: FrameSize, onFrame: (k: number, rgb: Uint8Array) => unknown, signal?: AbortSignal): Promise<number> {
  const first = wanted[0];
  const fps = probe.fps || 1;
  // Half a frame early, so the first frame kept is `first` itself; the select counts from there.
  const seek = first > 0 ? ["-ss", ((first - 0.5) / fps).toFixed(6)] : [];
  const scale = size.isCover ? `scale=${size.width}:${size.height}:force_original_aspect_ratio=increase:flags=bicubic,crop=${size.width}:${size.height}` : `scale=${size.width}:${size.height}:flags=area`;
  const filter = `select='${selectExpression(wanted.map((n) => n - first))}',${scale}`;
  const args = ["-nostdin", "-v", "error", ...seek, "-i", file, "-vf", filter, "-vsync", "passthrough", "-frames:v", String(wanted.length), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"];
  const frameBytes = size.width * size.height * 3;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error("Cancelled"));
    const child = spawnOwned(tools.ffmpeg, args, { stdio: ["ignore", "pipe", "pipe"] });
    let frame = new Uint8Array(frameBytes);
    let filled = 0;
    let count = 0;
    let stderr = "";
    let failure: unknown = null;
    const consume = async (chunk: Buffer) => {
      for (let offset = 0; offset < chunk.length; ) {
        const take = Math.min(frameBytes - filled, chunk.length - offset);
        frame.set(chunk.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled < frameBytes) continue;
        if (count < wanted.length) {
          const pending = onFrame(count, frame);
          if (pending instanceof Promise) await pending;
        }
        count++;
        frame = new Uint8Array(frameBytes);
        filled = 0;
      }
    };
    child.stdout!.on("data", (chunk: Buffer) => {
      if (failure) return; // the run is being killed; what is still in the pipe is not wanted
      // A consumer that works on each frame (an image encoder) holds ffmpeg back until it is
      // done, so no more than one frame waits in memory however fast the video decodes.
      child.stdout!.pause();
      consume(chunk).then(
        () => child.stdout!.resume(),
        (error: unknown) => {
          // Thrown inside a stream handler it would end the process: it ends this run instead.
          failure = error;
          killOwned(child);
          child.stdout!.resume();
        },
      );
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-2000)));
    const abort = () => killOwned(child);
    signal?.addEventListener("abort", abort, { once: true });
    child.once("error", (error) => {
      signal?.removeEventListener("abort", abort);
      reject(new AppError("INTERNAL", `Could not run ffmpeg (${tools.ffmpeg}): ${error.message}`, { cause: error }));
    });
    child.once("close", (code) => {
      signal?.removeEventListener("abort", abort);
      if (signal?.aborted) return reject(signal.reason ?? new Error("Cancelled"));
      if (failure) return reject(failure);
      if (code !== 0) return reject(new AppError("BAD_REQUEST", `ffmpeg could not decode ${path.basename(file)}: ${stderr.trim().split("\n").at(-1) || `exit ${code}`}`));
      resolve(count);
    });
  });
}

/** The episode videos to sample, grouped by file; episodes without a video go to `problems`. */
function planSpans(ds: EvalDataset, framesPerEpisode: number, problems: SamplingResult["problems"], skip?: (episode: number, camera: string) => boolean): Map<string, Span[]> {
  const byFile = new Map<string, Span[]>();
  for (const e of ds.episodes) {
    for (const camera of ds.cameras) {
      if (skip?.(e.index, camera)) continue;
      const video = e.videos[camera];
      if (!video) {
        problems.push({ episode: e.index, camera, reason: "no video file" });
        continue;
      }
      const span: Span = { episode: e.index, camera, file: video.file, from: video.from, frames: sampleIndices(e.timestamps.length, framesPerEpisode), delivered: 0 };
      const list = byFile.get(video.file) ?? [];
      list.push(span);
      byFile.set(video.file, list);
    }
  }
  return byFile;
}

/**
 * Samples `framesPerEpisode` frames evenly over each episode's span of each camera's video
 * (the episode starts `from` seconds into its file and lasts its rows / fps), at most
 * `maxSide` pixels on the long side, and hands each to `onFrame` as it is decoded: nothing but
 * the frame in hand is held. `onProgress` counts episode videos (episode × camera).
 */
export async function sampleEpisodeFrames(
  ds: EvalDataset,
  opts: {
    tools: MediaTools;
    framesPerEpisode: number;
    maxSide?: number;
    size?: { width: number; height: number };
    signal?: AbortSignal;
    onProgress?: (done: number, total: number) => void;
    onFrame: (frame: SampledFrame) => unknown;
    /** Episode videos not to read (their numbers are known already); they count as done. */
    skip?: (episode: number, camera: string) => boolean;
  },
): Promise<SamplingResult> {
  const { tools, framesPerEpisode, maxSide = SAMPLE_MAX_SIDE, size, signal, onProgress, onFrame, skip } = opts;
  signal?.throwIfAborted();
  const result: SamplingResult = { probes: new Map(), problems: [] };
  const queue = [...planSpans(ds, framesPerEpisode, result.problems, skip)];
  const total = ds.episodes.length * ds.cameras.length;
  const skipped = skip ? ds.episodes.reduce((n, e) => n + ds.cameras.filter((c) => skip(e.index, c)).length, 0) : 0;
  const missing = result.problems.length + skipped;
  const finished = new Set<Span>();
  const finish = (span: Span) => {
    if (finished.has(span)) return;
    finished.add(span);
    onProgress?.(missing + finished.size, total);
  };
  onProgress?.(missing, total);
  // One failure (or the caller's cancel) stops the other files' ffmpeg too.
  const stop = new AbortController();
  const cancel = () => stop.abort(signal?.reason);
  signal?.addEventListener("abort", cancel, { once: true });
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const [file, spans] = next;
      const reason = await sampleVideoFile(tools, file, spans, { ds, maxSide, size, signal: stop.signal, onFrame, finish, probes: result.probes });
      // A video with some of its frames read is judged on those; one with none is a problem.
      for (const s of spans) if (s.frames.length && !s.delivered) result.problems.push({ episode: s.episode, camera: s.camera, reason });
      for (const s of spans) finish(s);
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: FILES_AT_ONCE }, () => worker().catch((error: unknown) => (stop.abort(error), Promise.reject(error)))));
  signal?.removeEventListener("abort", cancel);
  if (signal?.aborted) throw signal.reason;
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw stop.signal.reason ?? failed.reason;
  // Files finish in any order; problems are listed by episode, then camera.
  const order = new Map(ds.episodes.map((e, i) => [e.index, i]));
  result.problems.sort((a, b) => order.get(a.episode)! - order.get(b.episode)! || ds.cameras.indexOf(a.camera) - ds.cameras.indexOf(b.camera));
  return result;
}

/**
 * Probes one file and samples its spans; resolves with the reason to give for spans that got no
 * frame (the file unreadable, or ending before them). Rejects only when stopped or when `onFrame` fails.
 */
async function sampleVideoFile(tools: MediaTools, file: string, spans: Span[], ctx: { ds: EvalDataset; maxSide: number; size?: { width: number; height: number }; signal: AbortSignal; onFrame: (f: SampledFrame) => unknown; finish: (span: Span) => void; probes: Map<string, VideoProbe> }): Promise<string> {
  ctx.signal.throwIfAborted();
  try {
    const probe = await probeVideo(tools, file);
    ctx.probes.set(file, probe);
    await sampleFile(tools, file, probe, spans, ctx);
    return `the video ends before the episode (${path.basename(file)})`;
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason ?? error;
    if (!(error instanceof AppError)) throw error; // the caller's own failure, not the video's
    return error.message;
  }
}

/** Samples every span of one file, in runs of FRAMES_PER_RUN frames, calling `finish` as each span has all its frames. */
async function sampleFile(tools: MediaTools, file: string, probe: VideoProbe, spans: Span[], ctx: { ds: EvalDataset; maxSide: number; size?: { width: number; height: number }; signal?: AbortSignal; onFrame: (f: SampledFrame) => unknown; finish: (span: Span) => void }): Promise<void> {
  const fps = probe.fps || ctx.ds.fps;
  // File frame → the (span, sample) pairs that want it (two episodes may point at the same frames).
  const wanted = new Map<number, [Span, number][]>();
  for (const span of spans) {
    span.frames.forEach((k, sample) => {
      const n = Math.max(0, Math.round((span.from + k / ctx.ds.fps) * fps));
      const list = wanted.get(n) ?? [];
      list.push([span, sample]);
      wanted.set(n, list);
    });
  }
  const order = [...wanted.keys()].sort((a, b) => a - b);
  const size: FrameSize = ctx.size ? { ...ctx.size, isCover: true } : scaledSize(probe, ctx.maxSide);
  for (let i = 0; i < order.length; i += FRAMES_PER_RUN) {
    const run = order.slice(i, i + FRAMES_PER_RUN);
    await decodeRun(tools, file, probe, run, size, async (k, rgb) => {
      for (const [span, sample] of wanted.get(run[k])!) {
        const pending = ctx.onFrame({ episode: span.episode, camera: span.camera, sample, of: span.frames.length, frame: span.frames[sample], width: size.width, height: size.height, rgb });
        if (pending instanceof Promise) await pending;
        if (++span.delivered === span.frames.length) ctx.finish(span);
      }
    }, ctx.signal);
  }
}

/** How the per-episode visual descriptor is made, for the report. */
export function describeDescriptor(framesPerEpisode: number): string {
  return `Mean over ${framesPerEpisode} evenly spaced frames per episode and camera (decoded at most ${SAMPLE_MAX_SIDE} px on the long side) of an ${THUMB_SIDE}×${THUMB_SIDE} grey thumbnail and a ${COLOUR_LEVELS}×${COLOUR_LEVELS}×${COLOUR_LEVELS} RGB colour histogram (square-rooted, so that distances between them are Hellinger distances), cameras side by side; the map is their first two principal components.`;
}

/** Folds each sampled frame into its episode video's numbers, keeping only the last grey frame per video. */
function collector(keep: (f: SampledFrame, stats: { laplacianVar: number; luma: number }) => void) {
  const samples = new Map<string, CameraSamples>();
  const previous = new Map<string, { frame: number; grey: Uint8Array }>();
  const onFrame = (f: SampledFrame) => {
    const key = `${f.episode}\u0000${f.camera}`;
    const stats = measureFrame(f.rgb, f.width, f.height);
    keep(f, stats);
    let s = samples.get(key);
    if (!s) {
      s = { episode: f.episode, camera: f.camera, frames: [], luma: [], p05: [], p95: [], laplacianVar: [], diffs: [], thumbSum: new Float64Array(stats.thumb.length), colourSum: new Float64Array(stats.colour.length) };
      samples.set(key, s);
    }
    s.frames.push(f.frame);
    s.luma.push(stats.luma);
    s.p05.push(stats.p05);
    s.p95.push(stats.p95);
    s.laplacianVar.push(stats.laplacianVar);
    stats.thumb.forEach((v, i) => (s.thumbSum[i] += v));
    stats.colour.forEach((v, i) => (s.colourSum[i] += v));
    const before = previous.get(key);
    const diff = before ? meanAbsDiff(before.grey, stats.grey) : null;
    if (before && diff !== null) s.diffs.push({ from: before.frame, to: f.frame, diff });
    if (f.sample + 1 < f.of) previous.set(key, { frame: f.frame, grey: stats.grey });
    else previous.delete(key);
  };
  return { samples, onFrame };
}

/**
 * Scores high-fidelity vision (h) and visual diversity (v) from frames sampled off each
 * episode's videos, with a 2-D map of the episodes by their visual descriptor.
 */
export async function scoreVision(
  ds: EvalDataset,
  opts: {
    tools: MediaTools;
    framesPerEpisode: number;
    signal?: AbortSignal;
    onProgress?: (done: number, total: number) => void;
    embeddings?: EmbeddingSums & { descriptor: string };
    /** Where each episode video's numbers are kept between scorings (see episode-cache.ts); none: everything is decoded. */
    cacheDir?: string;
    /** The sha256 of a video file, where the blob store recorded it. */
    sumOf?: (file: string) => string | undefined;
  },
): Promise<{ h: MetricOutput; v: MetricOutput; visualMap: { index: number; x: number; y: number }[]; descriptor: string; sampleFrames: SampleFrame[]; sampleFramesExplain: string | null; reused: number }> {
  const keeper = frameKeeper(ds);
  const { samples, onFrame } = collector(keeper.offer);
  const { embeddings, cacheDir, sumOf, ...sampling } = opts;
  const videoKey = (episode: number, camera: string) => `${episode}\u0000${camera}`;
  // Episode videos known from earlier scorings are not read again, except those whose frame the
  // report shows (a JPEG is made from the decoded frame).
  const keys = new Map<string, { key: string; file: string }>();
  const cached = new Map<string, CachedVideo>();
  if (cacheDir) {
    await Promise.all(ds.episodes.flatMap((e) => ds.cameras.map(async (camera) => {
      const video = e.videos[camera];
      if (!video) return;
      const key = await episodeVideoKey(video.file, { from: video.from, frames: sampleIndices(e.timestamps.length, opts.framesPerEpisode), maxSide: SAMPLE_MAX_SIDE, fps: ds.fps }, sumOf?.(video.file));
      if (!key) return;
      keys.set(videoKey(e.index, camera), { key, file: video.file });
      const hit = keeper.wants(e.index, camera) ? null : await readCachedVideo(cacheDir, key);
      if (hit) cached.set(videoKey(e.index, camera), hit);
    })));
  }
  const sampled = await sampleEpisodeFrames(ds, { ...sampling, onFrame, skip: (episode, camera) => cached.has(videoKey(episode, camera)) });
  if (cacheDir) {
    // What was decoded whole is kept for the next scoring (a video with a problem is not).
    const troubled = new Set(sampled.problems.map((p) => videoKey(p.episode, p.camera)));
    await Promise.all([...samples.entries()].map(async ([k, s]) => {
      const at = keys.get(k);
      const probe = at && sampled.probes.get(at.file);
      if (!at || !probe || troubled.has(k) || cached.has(k)) return;
      await writeCachedVideo(cacheDir, at.key, { samples: s, probe }).catch(() => {});
    }));
    for (const [k, hit] of cached) {
      const [episode, camera] = k.split("\u0000");
      samples.set(k, { episode: Number(episode), camera, ...hit.samples });
      const file = keys.get(k)?.file;
      if (file && !sampled.probes.has(file)) sampled.probes.set(file, hit.probe);
    }
  }
  // In episode and camera order, whichever way they came.
  const order = new Map(ds.episodes.map((e, i) => [e.index, i]));
  const videos = [...samples.values()].sort((a, b) => order.get(a.episode)! - order.get(b.episode)! || ds.cameras.indexOf(a.camera) - ds.cameras.indexOf(b.camera));
  const h = scoreFidelity(ds, { samples: videos, probes: sampled.probes, problems: sampled.problems });
  const useEmbeddings = embeddings && embeddings.sums.size ? embeddings : undefined;
  const { output: v, visualMap } = scoreDiversity(ds, { samples: videos, embeddings: useEmbeddings });
  const descriptor = useEmbeddings ? useEmbeddings.descriptor : videos.length ? describeDescriptor(opts.framesPerEpisode) : "No video frames could be sampled, so episodes have no visual descriptor.";
  const sampleFrames = await keeper.encode(opts.tools, opts.signal);
  return { h, v, visualMap, descriptor, sampleFrames, sampleFramesExplain: sampleFrames.length ? describeSampleFrames() : null, reused: cached.size };
}
