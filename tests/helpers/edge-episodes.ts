import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export const JOINTS = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"];

/** Per-frame rows like LeRobot's recorder writes: state follows action with a lag. */
export function episodeRows(frames: number, fps: number, seed = 0): Record<string, unknown>[] {
  return Array.from({ length: frames }, (_, i) => {
    const t = i / fps;
    const action = JOINTS.map((_, j) => Math.round(40 * Math.sin(t * (1 + j * 0.3) + seed + j) * 1000) / 1000);
    const state = JOINTS.map((_, j) => Math.round(40 * Math.sin((t - 0.1) * (1 + j * 0.3) + seed + j) * 1000) / 1000);
    return { frame_index: i, timestamp: Math.round(t * 1e6) / 1e6, "observation.state": state, action };
  });
}

/**
 * Writes a raw episode as an agent uploads it, frames from ffmpeg's test source:
 * images/<camera>/episode-<n>/frame-<i>.png and data/episode-<n>.jsonl.
 */
export async function writeRawEpisode(root: string, { number, frames, fps = 30, cameras = ["front", "wrist"], size = "64x48", pad = 0, seed = number }: { number: number; frames: number; fps?: number; cameras?: string[]; size?: string; pad?: number; seed?: number }): Promise<void> {
  for (const [c, camera] of cameras.entries()) {
    const dir = path.join(root, "images", camera, `episode-${String(number).padStart(pad, "0")}`);
    await fs.mkdir(dir, { recursive: true });
    const pattern = pad ? `frame-%0${pad}d.png` : "frame-%d.png";
    const source = c % 2 === 0 ? `testsrc=size=${size}:rate=${fps}` : `testsrc2=size=${size}:rate=${fps}`;
    await run("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", source, "-frames:v", String(frames), "-start_number", "0", path.join(dir, pattern)]);
  }
  await fs.mkdir(path.join(root, "data"), { recursive: true });
  await fs.writeFile(path.join(root, "data", `episode-${number}.jsonl`), episodeRows(frames, fps, seed).map((r) => JSON.stringify(r)).join("\n") + "\n");
}
