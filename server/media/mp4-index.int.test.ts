import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listEncoders, mediaTools, probeVideo } from "./ffmpeg";
import { probeOwnMp4 } from "./mp4-index";

// The encoder's own check of what it wrote reads the MP4's index in-process: it must say what
// ffprobe says of the same files, and give up (null, so ffprobe is asked) on anything else.

const run = promisify(execFile);
const tools = mediaTools({});
let dir: string;
let hasAv1 = false;

async function encode(name: string, args: string[], size = "128x96"): Promise<string> {
  const file = path.join(dir, name);
  await run(tools.ffmpeg, ["-v", "error", "-y", "-f", "lavfi", "-i", `testsrc2=size=${size}:rate=30`, "-frames:v", "45", ...args, file]);
  return file;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-mp4-index-"));
  hasAv1 = (await listEncoders(tools.ffmpeg)).has("libsvtav1");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("probeOwnMp4", () => {
  it("says what ffprobe says of H.264 files, 8-bit 4:2:0 and others, index first or last", async () => {
    const files = [
      await encode("h264.mp4", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-r", "30", "-movflags", "+faststart"]),
      await encode("h264-444.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv444p", "-movflags", "+faststart"]),
      await encode("h264-index-last.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"], "64x48"),
      await encode("h264-25fps.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-r", "25"]),
    ];
    for (const file of files) {
      const ours = await probeOwnMp4(file);
      expect(ours, path.basename(file)).not.toBeNull();
      expect(ours, path.basename(file)).toEqual(await probeVideo(tools, file));
    }
    expect((await probeOwnMp4(files[1]))!.pixFmt).toBe("yuv444p");
    expect(await probeOwnMp4(files[3])).toMatchObject({ fps: 25, frames: 45, durationS: 1.8 });
  });

  it("says what ffprobe says of an AV1 file as LeRobot encodes it (where ffmpeg has libsvtav1)", async (ctx) => {
    if (!hasAv1) ctx.skip();
    const file = await encode("av1.mp4", ["-c:v", "libsvtav1", "-g", "2", "-crf", "30", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]);
    expect(await probeOwnMp4(file)).toEqual(await probeVideo(tools, file));
  });

  it("leaves a cut-off file, another codec and a file that is no MP4 to ffprobe", async () => {
    const whole = await encode("whole.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]);
    const cut = path.join(dir, "cut.mp4");
    const bytes = fs.readFileSync(whole);
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    expect(await probeOwnMp4(cut)).toBeNull();
    expect(await probeOwnMp4(await encode("mpeg4.mp4", ["-c:v", "mpeg4"]))).toBeNull();
    const noise = path.join(dir, "noise.mp4");
    fs.writeFileSync(noise, Buffer.from("not a video at all, just some text that is long enough"));
    expect(await probeOwnMp4(noise)).toBeNull();
    const empty = path.join(dir, "empty.mp4");
    fs.writeFileSync(empty, "");
    expect(await probeOwnMp4(empty)).toBeNull();
  });
});
