import fs from "node:fs/promises";
import type { VideoProbe } from "./ffmpeg";

// What ffprobe would say of an MP4 that ffmpeg has just written for us, read from the file's own
// index (the moov box) in-process: the video track's codec, size, pixel format, frame rate, frame
// count and duration, and that every top-level box ends within the file (a cut-off mdat shows).
// It reads a few kilobytes instead of starting a process beside the encoder. Anything it does not
// recognise for certain — another codec, a pixel format it cannot name, an odd layout — gives
// null, and the caller asks ffprobe instead.

/** The most bytes of index read; a larger moov is left to ffprobe. */
const MAX_MOOV_BYTES = 32 * 1024 * 1024;

interface Box {
  type: string;
  /** The box's contents, after its header. */
  body: Buffer;
}

/**
 * The header of the box at `at` in `buf`: its type, its whole size (a size of 0 runs to `end`)
 * and the header's length; null when the header is cut short or names an impossible size.
 */
function boxHeader(buf: Buffer, at: number, end: number): { type: string; size: number; header: number } | null {
  if (at + 8 > buf.length) return null;
  let size = buf.readUInt32BE(at);
  let header = 8;
  if (size === 1) {
    if (at + 16 > buf.length) return null;
    size = Number(buf.readBigUInt64BE(at + 8));
    header = 16;
  } else if (size === 0) size = end - at;
  return size < header ? null : { type: buf.toString("latin1", at + 4, at + 8), size, header };
}

function* boxesIn(buf: Buffer): Generator<Box> {
  for (let at = 0; ; ) {
    const box = boxHeader(buf, at, buf.length);
    if (!box || at + box.size > buf.length) return;
    yield { type: box.type, body: buf.subarray(at + box.header, at + box.size) };
    at += box.size;
  }
}

const child = (buf: Buffer, type: string) => {
  for (const b of boxesIn(buf)) if (b.type === type) return b.body;
  return null;
};

/** Reads Exp-Golomb and fixed-width fields of an H.264 parameter set (emulation bytes removed). */
class BitReader {
  private bit = 0;
  constructor(private readonly data: Buffer) {}
  read(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.data[this.bit >> 3];
      if (byte === undefined) throw new Error("past the end");
      v = (v << 1) | ((byte >> (7 - (this.bit & 7))) & 1);
      this.bit++;
    }
    return v;
  }
  ue(): number {
    let zeros = 0;
    while (this.read(1) === 0) if (++zeros > 31) throw new Error("bad Exp-Golomb code");
    return (2 ** zeros - 1) + (zeros ? this.read(zeros) : 0);
  }
}

const unescape = (nal: Buffer) => {
  const out: number[] = [];
  for (let i = 0; i < nal.length; i++) {
    if (i >= 2 && nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) continue;
    out.push(nal[i]);
  }
  return Buffer.from(out);
};

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** ffprobe's name for an H.264 stream's pixel format, from its first sequence parameter set. */
function h264PixFmt(avcC: Buffer): string | null {
  if (avcC.length < 8 || (avcC[5] & 0x1f) < 1) return null;
  const spsLength = avcC.readUInt16BE(6);
  const sps = unescape(avcC.subarray(8, 8 + spsLength));
  const r = new BitReader(sps.subarray(1)); // after the NAL header
  const profile = r.read(8);
  r.read(16); // constraint flags, level
  r.ue(); // seq_parameter_set_id
  let chroma = 1;
  let depth = 8;
  if (HIGH_PROFILES.has(profile)) {
    chroma = r.ue();
    if (chroma === 3) r.read(1);
    depth = 8 + r.ue();
    if (8 + r.ue() !== depth) return null;
  }
  const base = ["gray", "yuv420p", "yuv422p", "yuv444p"][chroma];
  if (!base) return null;
  if (depth === 8) return base;
  return chroma === 0 ? null : `${base}${depth}le`;
}

/** ffprobe's name for an AV1 stream's pixel format, from its av1C box. */
function av1PixFmt(av1C: Buffer): string | null {
  if (av1C.length < 4) return null;
  const flags = av1C[2];
  const high = (flags >> 6) & 1;
  const twelve = (flags >> 5) & 1;
  const mono = (flags >> 4) & 1;
  const sx = (flags >> 3) & 1;
  const sy = (flags >> 2) & 1;
  const depth = high ? (twelve ? 12 : 10) : 8;
  const base = mono ? "gray" : sx && sy ? "yuv420p" : sx ? "yuv422p" : !sy ? "yuv444p" : null;
  if (!base) return null;
  return depth === 8 ? base : `${base}${depth}le`;
}

function videoTrack(moov: Buffer): VideoProbe | null {
  for (const box of boxesIn(moov)) {
    if (box.type !== "trak") continue;
    const mdia = child(box.body, "mdia");
    const hdlr = mdia && child(mdia, "hdlr");
    if (!mdia || !hdlr || hdlr.toString("latin1", 8, 12) !== "vide") continue;
    const mdhd = child(mdia, "mdhd");
    const stbl = child(child(mdia, "minf") ?? Buffer.alloc(0), "stbl");
    if (!mdhd || !stbl) return null;
    const v1 = mdhd[0] === 1;
    const timescale = mdhd.readUInt32BE(v1 ? 20 : 12);
    const duration = v1 ? Number(mdhd.readBigUInt64BE(24)) : mdhd.readUInt32BE(16);
    const stsd = child(stbl, "stsd");
    const stts = child(stbl, "stts");
    const stsz = child(stbl, "stsz");
    if (!stsd || !stts || !stsz || stsd.readUInt32BE(4) < 1 || stts.readUInt32BE(4) < 1 || !timescale) return null;
    const entry = [...boxesIn(stsd.subarray(8))][0];
    if (!entry || entry.body.length < 78) return null;
    const width = entry.body.readUInt16BE(24);
    const height = entry.body.readUInt16BE(26);
    const config = entry.body.subarray(78);
    let codec: string;
    let pixFmt: string | null;
    if (entry.type === "avc1") {
      codec = "h264";
      const avcC = child(config, "avcC");
      pixFmt = avcC && h264PixFmt(avcC);
    } else if (entry.type === "av01") {
      codec = "av1";
      const av1C = child(config, "av1C");
      pixFmt = av1C && av1PixFmt(av1C);
    } else return null;
    if (!pixFmt) return null;
    // One frame duration throughout (a constant-rate encode); anything else goes to ffprobe.
    if (stts.readUInt32BE(4) !== 1) return null;
    const delta = stts.readUInt32BE(12);
    return { codec, width, height, pixFmt, fps: delta ? timescale / delta : 0, frames: stsz.readUInt32BE(8), durationS: duration / timescale };
  }
  return null;
}

/** The video stream of an MP4 we wrote, as ffprobe would describe it; null when ffprobe must be asked. */
export async function probeOwnMp4(file: string): Promise<VideoProbe | null> {
  const handle = await fs.open(file, "r");
  try {
    const { size } = await handle.stat();
    const header = Buffer.alloc(16);
    let moov: Buffer | null = null;
    for (let at = 0; at < size; ) {
      const { bytesRead } = await handle.read(header, 0, 16, at);
      const box = boxHeader(header.subarray(0, bytesRead), 0, size - at);
      // A box that runs past the end: the file was cut off.
      if (!box || at + box.size > size) return null;
      const boxSize = box.size;
      if (box.type === "moov") {
        if (boxSize > MAX_MOOV_BYTES || moov) return null;
        moov = Buffer.alloc(boxSize);
        await handle.read(moov, 0, boxSize, at);
      }
      at += boxSize;
    }
    if (!moov) return null;
    try {
      return videoTrack(moov.subarray(8));
    } catch {
      return null;
    }
  } finally {
    await handle.close();
  }
}
