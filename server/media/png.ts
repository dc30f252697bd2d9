import fsSync from "node:fs";
import fs from "node:fs/promises";
import zlib from "node:zlib";

// Cheap checks that name a bad frame before (or after) ffmpeg trips over it: the signature,
// every chunk's CRC and the closing IEND catch truncated and corrupted files; inflating the
// image data (slower) catches the rest and is run only to find the frame ffmpeg failed on.

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Returns what is wrong with a PNG, or null when it is sound. */
export function checkPng(buf: Buffer, { inflate = false } = {}): string | null {
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) return "is not a PNG (bad signature)";
  let offset = 8;
  let sawHeader = false;
  const idat: Buffer[] = [];
  while (offset + 12 <= buf.length) {
    const length = buf.readUInt32BE(offset);
    const type = buf.toString("latin1", offset + 4, offset + 8);
    if (offset + 12 + length > buf.length) return `is cut short (the ${type} chunk runs past the end)`;
    const crc = buf.readUInt32BE(offset + 8 + length);
    if (zlib.crc32(buf.subarray(offset + 4, offset + 8 + length)) !== crc) return `is corrupt (bad checksum in its ${type} chunk)`;
    if (!sawHeader && type !== "IHDR") return "is corrupt (no IHDR header)";
    sawHeader = true;
    if (type === "IDAT" && inflate) idat.push(buf.subarray(offset + 8, offset + 8 + length));
    if (type === "IEND") {
      if (inflate) {
        try {
          zlib.inflateSync(Buffer.concat(idat));
        } catch (error) {
          return `has image data that does not decode (${(error as Error).message})`;
        }
      }
      return null;
    }
    offset += 12 + length;
  }
  return "is cut short (no IEND chunk)";
}

export async function checkPngFile(file: string, options?: { inflate?: boolean }): Promise<string | null> {
  return checkPng(await fs.readFile(file), options);
}

/**
 * The quick check run beside ffmpeg: the signature, the IHDR header and the closing IEND chunk,
 * from two small reads. It names a frame cut short (an interrupted copy) before ffmpeg gets to
 * it; damage inside a file makes ffmpeg fail (it checks chunk CRCs and stops on the first
 * error), and `checkPngFile` then names the frame.
 */
export function checkPngEnds(file: string): string | null {
  // Synchronous on purpose: an episode's hundreds of frames take a few milliseconds this way,
  // where a promise per read costs several times that in CPU taken from the encoder beside it.
  const fd = fsSync.openSync(file, "r");
  try {
    const { size } = fsSync.fstatSync(fd);
    if (size < 8 + 25 + 12) return size < 8 ? "is not a PNG (too short)" : "is cut short";
    const head = Buffer.alloc(16);
    fsSync.readSync(fd, head, 0, 16, 0);
    if (!head.subarray(0, 8).equals(SIGNATURE)) return "is not a PNG (bad signature)";
    if (head.toString("latin1", 12, 16) !== "IHDR") return "is corrupt (no IHDR header)";
    const tail = Buffer.alloc(12);
    fsSync.readSync(fd, tail, 0, 12, size - 12);
    if (tail.readUInt32BE(0) !== 0 || tail.toString("latin1", 4, 8) !== "IEND") return "is cut short (no IEND chunk)";
    return null;
  } finally {
    fsSync.closeSync(fd);
  }
}
