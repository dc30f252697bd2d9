import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { AgentError } from "./config";
import type { EpisodeFile, EpisodeOnDisk } from "./layout";

// Mode 0 ("local"): the agent encodes each camera's frames with the machine's own ffmpeg and
// uploads MP4s. The videos are written under the agent's folder, not into the recording.

const ffmpegPath = () => process.env.FFMPEG_PATH || "ffmpeg";

function run(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpegPath(), args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(new AgentError(error.code === "ENOENT" ? `Mode 0 encodes here, but there is no ffmpeg at "${ffmpegPath()}": install ffmpeg or set FFMPEG_PATH, or upload raw frames with --mode 2` : `ffmpeg could not start: ${error.message}`)),
    );
    child.on("close", (code) => (code === 0 ? resolve() : reject(new AgentError(`ffmpeg failed (exit ${code}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`))));
  });
}

/**
 * Encodes every camera of the episode that has frames but no video, into `outRoot`/videos/...
 * (or takes the video an earlier run made there); returns the episode with its videos.
 */
export async function encodeEpisodeLocally(e: EpisodeOnDisk, opts: { outRoot: string; fps: number; onCamera?: (camera: string) => void }): Promise<EpisodeOnDisk> {
  const videos = new Map(e.videos);
  for (const [camera, frames] of e.frames) {
    if (videos.has(camera) || frames.length === 0) continue;
    const dir = path.dirname(frames[0].abs);
    const names = frames.map((f) => path.basename(f.abs));
    const width = names[0].length;
    if (names.some((n) => n.length !== width)) throw new AgentError(`The frames of ${camera} in episode ${e.index} are not numbered with the same number of digits; ffmpeg would take them out of order`);
    const episodeDir = path.basename(dir);
    const rel = `videos/${camera}/${episodeDir}.mp4`;
    const out = path.join(opts.outRoot, "videos", camera, `${episodeDir}.mp4`);
    // Encoded by an earlier run (one killed before its upload finished): the same video, kept,
    // so the upload's fingerprint is the same and it resumes instead of starting again. Only a
    // whole video bears the name (it is renamed from a temporary file), and a frame written
    // after it makes it stale.
    const made = fs.statSync(out, { throwIfNoEntry: false });
    const newestFrame = frames.reduce((newest, f) => Math.max(newest, f.mtimeMs), 0);
    if (made && made.size > 0 && made.mtimeMs >= newestFrame) {
      videos.set(camera, { rel, abs: out, size: made.size, mtimeMs: made.mtimeMs });
      continue;
    }
    opts.onCamera?.(camera);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const temp = `${out}.tmp.mp4`;
    await run(["-y", "-loglevel", "error", "-framerate", String(opts.fps), "-pattern_type", "glob", "-i", path.join(dir, "frame[-_]*.png"), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-g", "2", temp]);
    fs.renameSync(temp, out);
    const st = fs.statSync(out);
    const file: EpisodeFile = { rel, abs: out, size: st.size, mtimeMs: st.mtimeMs };
    videos.set(camera, file);
  }
  return { ...e, videos };
}
