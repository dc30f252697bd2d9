import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import zlib from "node:zlib";

const run = promisify(execFile);

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** A small RGB PNG whose pixels depend on `seed` (so each frame is a different blob). */
export function pngFrame(width = 32, height = 24, seed = 1): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width * 3; x++) rows[y * (width * 3 + 1) + 1 + x] = (x * 7 + y * 13 + seed * 31) & 0xff;
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk("IHDR", ihdr), pngChunk("IDAT", zlib.deflateSync(rows)), pngChunk("IEND", Buffer.alloc(0))]);
}

/** `count` JPEG frames of ffmpeg's moving test pattern, each different, as a camera would send them. */
export async function jpegFrames(count: number, { width = 64, height = 48 } = {}): Promise<Buffer[]> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-jpeg-"));
  try {
    await run("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `testsrc=size=${width}x${height}:rate=30`, "-frames:v", String(count), "-q:v", "5", path.join(dir, "frame-%04d.jpg")]);
    return await Promise.all(Array.from({ length: count }, (_, i) => fs.readFile(path.join(dir, `frame-${String(i + 1).padStart(4, "0")}.jpg`))));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
