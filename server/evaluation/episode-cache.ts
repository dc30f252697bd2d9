import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { VideoProbe } from "../media/ffmpeg";
import type { CameraSamples } from "./frame-stats";

// What the visual metrics read off one episode's video of one camera — the numbers of its
// sampled frames and the probe of its file — kept per episode video, so a scoring of a dataset
// that changed a little (episodes appended, a task renamed) decodes only what is new. An entry is
// found by the video file's identity (device, inode, size, modification time: a build links an
// unchanged file from the build before, so it keeps its inode), where the episode starts in it
// and which frames were asked for; a file written again is a new identity and is decoded again.
// Entries are files under the instance's evaluation cache, per organisation; a lost or
// unreadable entry only means decoding again.

/** Bumped when what is measured on a frame changes, so older entries are not read as current. */
const FORMAT = 1;

const entrySchema = z.object({
  format: z.literal(FORMAT),
  frames: z.array(z.number()),
  luma: z.array(z.number()),
  p05: z.array(z.number()),
  p95: z.array(z.number()),
  laplacianVar: z.array(z.number()),
  diffs: z.array(z.object({ from: z.number(), to: z.number(), diff: z.number() })),
  thumbSum: z.array(z.number()),
  colourSum: z.array(z.number()),
  probe: z.object({ codec: z.string(), width: z.number(), height: z.number(), pixFmt: z.string(), fps: z.number(), frames: z.number(), durationS: z.number() }),
});

export interface CachedVideo {
  samples: Omit<CameraSamples, "episode" | "camera">;
  probe: VideoProbe;
}

/**
 * The key of one episode video's samples, or null when its file cannot be looked at (it is then
 * decoded, and fails there with its reason). The file is known by its sha256 when the blob store
 * recorded it (the same on every machine, whatever touched the file), else by its identity on
 * this disk.
 */
export async function episodeVideoKey(file: string, span: { from: number; frames: number[]; maxSide: number; fps: number }, sha256?: string): Promise<string | null> {
  const st = await fs.stat(file).catch(() => null);
  if (!st?.isFile()) return null;
  const identity = sha256 ? ["sha256", sha256] : [st.dev, st.ino, st.size, st.mtimeMs];
  return crypto.createHash("sha256").update(JSON.stringify([FORMAT, ...identity, span.from, span.frames, span.maxSide, span.fps])).digest("hex");
}

const entryPath = (dir: string, key: string) => path.join(dir, key.slice(0, 2), `${key}.json`);

export async function readCachedVideo(dir: string, key: string): Promise<CachedVideo | null> {
  try {
    const parsed = entrySchema.safeParse(JSON.parse(await fs.readFile(entryPath(dir, key), "utf8")));
    if (!parsed.success) return null;
    const { probe, thumbSum, colourSum, format: _format, ...rest } = parsed.data;
    return { samples: { ...rest, thumbSum: Float64Array.from(thumbSum), colourSum: Float64Array.from(colourSum) }, probe };
  } catch {
    return null;
  }
}

/** Written beside and renamed into place, so a reader never sees half an entry. */
export async function writeCachedVideo(dir: string, key: string, { samples, probe }: { samples: CameraSamples; probe: VideoProbe }): Promise<void> {
  const file = entryPath(dir, key);
  const entry = { format: FORMAT, frames: samples.frames, luma: samples.luma, p05: samples.p05, p95: samples.p95, laplacianVar: samples.laplacianVar, diffs: samples.diffs, thumbSum: [...samples.thumbSum], colourSum: [...samples.colourSum], probe };
  await fs.mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${crypto.randomBytes(4).toString("hex")}.tmp`;
  await fs.writeFile(temp, JSON.stringify(entry));
  await fs.rename(temp, file);
}
