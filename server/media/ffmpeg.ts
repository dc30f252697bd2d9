import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { AppError } from "../errors";
import { killOwned, runOwned, spawnOwned } from "../process/owned-child";

// ffmpeg and ffprobe, each run in a process group of its own that dies with the worker (see
// owned-child.ts). The system's ffmpeg comes first (FFMPEG_PATH, else the one on PATH): it is
// usually newer and has libsvtav1. The npm-shipped build is the fallback so a machine without
// ffmpeg still encodes (H.264 only). ffprobe always comes from the system.

export interface MediaTools {
  ffmpeg: string;
  ffprobe: string;
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return null;
}

function bundledFfmpeg(): string | null {
  try {
    const require = createRequire(import.meta.url);
    const found = (require("@ffmpeg-installer/ffmpeg") as { path: string }).path;
    return fs.existsSync(found) ? found : null;
  } catch {
    return null;
  }
}

export function mediaTools(settings: { FFMPEG_PATH?: string; FFPROBE_PATH?: string }): MediaTools {
  const ff = settings.FFMPEG_PATH ?? onPath("ffmpeg") ?? bundledFfmpeg();
  if (!ff) throw new AppError("INTERNAL", "No ffmpeg found: install ffmpeg or set FFMPEG_PATH");
  const probe = settings.FFPROBE_PATH ?? onPath("ffprobe");
  if (!probe) throw new AppError("INTERNAL", "No ffprobe found: install ffmpeg (it ships ffprobe) or set FFPROBE_PATH");
  return { ffmpeg: ff, ffprobe: probe };
}

const encoderCache = new Map<string, Promise<Set<string>>>();

/** The encoders this ffmpeg was built with (e.g. libx264, libsvtav1). */
export function listEncoders(ffmpegPath: string): Promise<Set<string>> {
  let cached = encoderCache.get(ffmpegPath);
  if (!cached) {
    cached = runOwned(ffmpegPath, ["-hide_banner", "-encoders"]).then(({ stdout }) => {
      const names = new Set<string>();
      for (const line of stdout.split("\n")) {
        const m = /^\s*[VAS][.A-Z]{5}\s+(\S+)/.exec(line);
        if (m) names.add(m[1]);
      }
      return names;
    });
    encoderCache.set(ffmpegPath, cached);
    cached.catch(() => encoderCache.delete(ffmpegPath));
  }
  return cached;
}

export type VideoCodec = "h264" | "av1";

export interface EncodeSettings {
  codec: VideoCodec;
  /** libx264 only. */
  preset: string;
  /** libx264 only (libsvtav1 uses LeRobot's 30). */
  crf: number;
}

/** The output options for a codec; av1 uses LeRobot's settings (libsvtav1, g=2, crf=30, yuv420p). */
export async function codecOptions(tools: MediaTools, settings: EncodeSettings): Promise<{ codec: VideoCodec; encoder: string; options: string[] }> {
  if (settings.codec === "av1") {
    if ((await listEncoders(tools.ffmpeg)).has("libsvtav1")) {
      return { codec: "av1", encoder: "libsvtav1", options: ["-c:v", "libsvtav1", "-g", "2", "-crf", "30", "-pix_fmt", "yuv420p"] };
    }
    // Said once per encode in the job's log by the caller; H.264 keeps the episode playable.
  }
  return { codec: "h264", encoder: "libx264", options: ["-c:v", "libx264", "-preset", settings.preset, "-crf", String(settings.crf), "-pix_fmt", "yuv420p"] };
}

export interface EncodeFramesInput {
  tools: MediaTools;
  /** An image2 pattern with a %0Nd counter starting at 0, e.g. /tmp/x/%06d.png. */
  pattern: string;
  fps: number;
  output: string;
  options: string[];
  signal?: AbortSignal;
  /** Called with the number of frames ffmpeg has encoded so far. */
  onFrames?: (frames: number) => void;
}

/**
 * Runs ffmpeg (which never reads stdin) to its end. Each line of its log goes to `onLine`; its
 * progress lines end in a carriage return, so lines are split on both. When `signal` aborts,
 * its process group is killed and the promise rejects with the abort's reason; a failure
 * rejects with `fail(the last lines of its log, how it ended)`.
 */
function runFfmpeg(tools: MediaTools, args: string[], { signal, onLine, fail }: { signal?: AbortSignal; onLine?: (line: string) => void; fail: (lines: string[], how: string) => Error }): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error("Cancelled"));
    const child = spawnOwned(tools.ffmpeg, ["-nostdin", "-y", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    const tail: string[] = [];
    let partial = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (partial + chunk).split(/\r\n|\r|\n/);
      partial = lines.pop() ?? "";
      for (const line of lines) {
        onLine?.(line);
        if (!line.trim() || /^\s*frame=/.test(line)) continue;
        tail.push(line);
        if (tail.length > 40) tail.shift();
      }
    });
    const abort = () => killOwned(child);
    signal?.addEventListener("abort", abort, { once: true });
    child.once("error", (error) => {
      signal?.removeEventListener("abort", abort);
      reject(new AppError("INTERNAL", `Could not run ffmpeg (${tools.ffmpeg}): ${error.message}`, { cause: error }));
    });
    child.once("close", (code, exitSignal) => {
      signal?.removeEventListener("abort", abort);
      if (signal?.aborted) return reject(signal.reason ?? new Error("Cancelled"));
      if (code === 0) return resolve();
      reject(fail(tail, exitSignal ? `ffmpeg was killed by ${exitSignal}` : `ffmpeg exited with code ${code}`));
    });
  });
}

/** Encodes numbered PNG frames into an MP4 (fast start, so it plays while loading). */
export function encodeFrames({ tools, pattern, fps, output, options, signal, onFrames }: EncodeFramesInput): Promise<void> {
  return runFfmpeg(
    tools,
    [
      // A damaged frame must stop the encode, not be concealed: chunk CRCs are checked and the first error is fatal.
      ...["-framerate", String(fps), "-start_number", "0", "-f", "image2", "-err_detect", "crccheck+explode", "-i", pattern],
      ...["-xerror", ...options, "-r", String(fps), "-an", "-movflags", "+faststart", "-f", "mp4", output],
    ],
    {
      signal,
      onLine: (line) => {
        const m = /frame=\s*(\d+)/.exec(line);
        if (m) onFrames?.(Number(m[1]));
      },
      fail: (lines, how) => {
        const detail = lines.filter((l) => /error|invalid|could not|no such/i.test(l)).slice(-3).join("; ");
        return new AppError("BAD_REQUEST", `ffmpeg could not encode ${path.basename(output)}: ${detail || `${how}${lines.length ? `: ${lines.at(-1)}` : ""}`}`);
      },
    },
  );
}

export interface VideoProbe {
  codec: string;
  width: number;
  height: number;
  pixFmt: string;
  fps: number;
  frames: number;
  durationS: number;
}

const PROBE_ARGS = ["-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=codec_name,width,height,pix_fmt,r_frame_rate,nb_read_packets,duration:format=duration", "-of", "json"];

const probeFailed = (file: string, stderr: string) => new AppError("BAD_REQUEST", `${path.basename(file)} is not a readable video: ${stderr.trim().split("\n").slice(-1)[0]}`);

function parseProbe(file: string, stdout: string): VideoProbe {
  const parsed = JSON.parse(stdout) as { streams?: Record<string, string | number>[]; format?: { duration?: string } };
  const s = parsed.streams?.[0];
  if (!s) throw new AppError("BAD_REQUEST", `${path.basename(file)} has no video stream`);
  const [num, den] = String(s.r_frame_rate ?? "0/1").split("/").map(Number);
  return {
    codec: String(s.codec_name),
    width: Number(s.width),
    height: Number(s.height),
    pixFmt: String(s.pix_fmt),
    fps: den ? num / den : 0,
    frames: Number(s.nb_read_packets ?? 0),
    durationS: Number(s.duration ?? parsed.format?.duration ?? 0),
  };
}

/** Reads a video's first stream with ffprobe; frames are counted from the packets (no decoding). */
export async function probeVideo(tools: MediaTools, file: string): Promise<VideoProbe> {
  let stdout: string;
  try {
    ({ stdout } = await runOwned(tools.ffprobe, [...PROBE_ARGS, file], { maxBuffer: 1024 * 1024 }));
  } catch (error) {
    throw probeFailed(file, (error as { stderr?: string }).stderr ?? (error as Error).message);
  }
  return parseProbe(file, stdout);
}

/** Joins MP4s of the same codec and size end to end without re-encoding. */
export async function concatVideos(tools: MediaTools, inputs: string[], output: string, signal?: AbortSignal): Promise<void> {
  const list = `${output}.txt`;
  await fs.promises.writeFile(list, inputs.map((f) => `file '${f.replace(/'/g, "'\\''")}'\n`).join(""));
  try {
    await runFfmpeg(tools, ["-f", "concat", "-safe", "0", "-i", list, "-c", "copy", "-movflags", "+faststart", "-f", "mp4", output], {
      signal,
      fail: (lines, how) => new AppError("INTERNAL", `ffmpeg could not join videos into ${path.basename(output)}: ${lines.slice(-2).join("; ") || how}`),
    });
  } finally {
    await fs.promises.rm(list, { force: true });
  }
}

/**
 * Decodes a video to small RGB frames and hands back only the frames asked for (packed RGB,
 * one buffer). Used for image statistics, which LeRobot also takes from downscaled frames.
 */
export async function sampleFramesRgb(tools: MediaTools, file: string, { width, height, indices, maxSide = 150 }: { width: number; height: number; indices: number[]; maxSide?: number }): Promise<{ pixels: Uint8Array; frames: number }> {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  const w = Math.max(2, Math.round((width * scale) / 2) * 2);
  const h = Math.max(2, Math.round((height * scale) / 2) * 2);
  const frameBytes = w * h * 3;
  const wanted = new Set(indices);
  const out = new Uint8Array(frameBytes * wanted.size);
  return new Promise((resolve, reject) => {
    const child = spawnOwned(tools.ffmpeg, ["-nostdin", "-v", "error", "-i", file, "-vf", `scale=${w}:${h}`, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], { stdio: ["ignore", "pipe", "pipe"] });
    let frame = 0;
    let within = 0;
    let kept = 0;
    let stderr = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      let offset = 0;
      while (offset < chunk.length) {
        const take = Math.min(frameBytes - within, chunk.length - offset);
        if (wanted.has(frame)) out.set(chunk.subarray(offset, offset + take), kept * frameBytes + within);
        within += take;
        offset += take;
        if (within === frameBytes) {
          if (wanted.has(frame)) kept++;
          frame++;
          within = 0;
        }
      }
    });
    child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new AppError("INTERNAL", `ffmpeg could not decode ${path.basename(file)}: ${stderr.trim().split("\n").slice(-1)[0] ?? `exit ${code}`}`));
      resolve({ pixels: out.subarray(0, kept * frameBytes), frames: kept });
    });
  });
}

/** Re-encodes `frames` frames of a video starting at `fromS` seconds (frame-exact: decoded, not copied). */
export function encodeSegment({ tools, input, fromS, frames, fps, output, options, signal }: { tools: MediaTools; input: string; fromS: number; frames: number; fps: number; output: string; options: string[]; signal?: AbortSignal }): Promise<void> {
  return runFfmpeg(tools, ["-ss", fromS.toFixed(6), "-i", input, ...options, "-frames:v", String(frames), "-r", String(fps), "-an", "-movflags", "+faststart", "-f", "mp4", output], {
    signal,
    fail: (lines, how) => new AppError("BAD_REQUEST", `ffmpeg could not cut ${path.basename(input)} at ${fromS.toFixed(3)} s: ${lines.slice(-2).join("; ") || how}`),
  });
}
