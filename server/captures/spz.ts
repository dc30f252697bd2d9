import zlib from "node:zlib";
import { AppError } from "../errors";
import { gzipPieces } from "./gzip-pieces";
import { cloudFloats, loadSplats, MAX_HEADER_BYTES, SPLAT_BLOCK, MAX_SPLATS, nonFiniteMessage, parsePlyHeader, readPlyFloats, SH_REST_PER_CHANNEL, type PlyFloats, type SplatCloud } from "./ply";

// Niantic's SPZ layout (src/cc/load-spz.cc): a 16-byte header, then attribute planes —
// positions, alphas, colours, scales, rotations, SH — the whole gzip-compressed. We write
// version 3 by default and can write version 2; the browser viewer cannot read version 4.
// Values are stored in the PLY's own axes: the viewer reads PLY and SPZ alike, so no flip.

export const SPZ_MAGIC = 0x5053474e;
const COLOR_SCALE = 0.15;
const SQRT1_2 = Math.SQRT1_2;

export interface SpzOptions {
  version?: 2 | 3;
  fractionalBits?: number;
  antialiased?: boolean;
  /**
   * zlib strategy; Z_RLE by default. The quantised planes are short-alphabet bytes with runs
   * (empty SH, saturated alphas) and few long repeats, so run-length plus Huffman comes out
   * smaller than zlib's default level 6 and about six times faster.
   */
  strategy?: number;
  level?: number;
}

export interface DecodedSpz extends SplatCloud {
  version: number;
  fractionalBits: number;
  antialiased: boolean;
}

const bad = (message: string) => new AppError("BAD_REQUEST", message);

export function bytesPerSplat(version: number, shDegree: number): number {
  return 9 + 1 + 3 + 3 + (version >= 3 ? 4 : 3) + SH_REST_PER_CHANNEL[shDegree] * 3;
}

// SH rest coefficients are bucketed: 5 bits for degree 1, 4 bits above, as the reference packs
// them. Both are looked up from the rounded byte: round(x·128 + 128), then its bucket, clamped.
function bucketTable(bucket: number): Uint8Array {
  const table = new Uint8Array(256);
  for (let q = 0; q < 256; q++) table[q] = Math.min(255, Math.floor((q + bucket / 2) / bucket) * bucket);
  return table;
}
const SH_BUCKET_5 = bucketTable(8);
const SH_BUCKET_4 = bucketTable(16);

export interface PackedSpz {
  /** The uncompressed SPZ: header and planes. */
  raw: Buffer;
  bounds: { min: [number, number, number]; max: [number, number, number] };
}

/**
 * Packs splats into the uncompressed SPZ bytes in one pass over them: each splat's fields are
 * read once and written to the six planes, with no per-splat allocation. Every value must be
 * finite and every position within the fixed-point range.
 */
export function packSplats(src: PlyFloats, count: number, shDegree: number, opts: SpzOptions & { what?: string } = {}): PackedSpz {
  const version = opts.version ?? 3;
  const bits = opts.fractionalBits ?? 12;
  const restN = SH_REST_PER_CHANNEL[shDegree];
  const shN = restN * 3;
  const n = count;
  const out = Buffer.alloc(16 + n * bytesPerSplat(version, shDegree));
  out.writeUInt32LE(SPZ_MAGIC, 0);
  out.writeUInt32LE(version, 4);
  out.writeUInt32LE(n, 8);
  out[12] = shDegree;
  out[13] = bits;
  out[14] = opts.antialiased ? 1 : 0;
  out[15] = 0;
  const oPos = 16;
  const oAlpha = oPos + n * 9;
  const oColor = oAlpha + n;
  const oScale = oColor + n * 3;
  const oRot = oScale + n * 3;
  const oSh = oRot + n * (version >= 3 ? 4 : 3);
  const { f32, stride, fields } = src;
  const fx = fields[0]!, fy = fields[1]!, fz = fields[2]!;
  const fdc0 = fields[3]!, fdc1 = fields[4]!, fdc2 = fields[5]!, fop = fields[6]!;
  const fs0 = fields[7]!, fs1 = fields[8]!, fs2 = fields[9]!;
  const frx = fields[10]!, fry = fields[11]!, frz = fields[12]!, frw = fields[13]!;
  const shFields = fields.subarray(14);
  const shTable = Array.from({ length: shN }, (_, k) => (k < 9 ? SH_BUCKET_5 : SH_BUCKET_4));
  const scale = 1 << bits;
  const limit = 1 << 23;
  const colorScale = COLOR_SCALE * 255;
  let minX = Infinity, minY = Infinity, minZ = Infinity, maxX = -Infinity, maxY = -Infinity, maxZ = -Infinity;
  let base = 0;
  for (let i = 0; i < n; i++) {
    if (i % SPLAT_BLOCK === 0) base = loadSplats(src, i, Math.min(n, i + SPLAT_BLOCK));
    const b = base + i * stride;
    const x = f32[b + fx]!, y = f32[b + fy]!, z = f32[b + fz]!;
    const d0 = f32[b + fdc0]!, d1 = f32[b + fdc1]!, d2 = f32[b + fdc2]!, op = f32[b + fop]!;
    const s0 = f32[b + fs0]!, s1 = f32[b + fs1]!, s2 = f32[b + fs2]!;
    let rx = f32[b + frx]!, ry = f32[b + fry]!, rz = f32[b + frz]!, rw = f32[b + frw]!;
    // v * 0 is 0 for a finite v and NaN otherwise.
    let check = x * 0 + y * 0 + z * 0 + d0 * 0 + d1 * 0 + d2 * 0 + op * 0 + s0 * 0 + s1 * 0 + s2 * 0 + rx * 0 + ry * 0 + rz * 0 + rw * 0;
    // Spherical harmonics, [coefficient][channel] as the fields are ordered.
    let o = oSh + i * shN;
    for (let k = 0; k < shN; k++) {
      const v = f32[b + shFields[k]!]!;
      check += v * 0;
      let q = v * 128 + 128.5;
      q = q < 0 ? 0 : q > 255 ? 255 : q;
      out[o++] = shTable[k]![q | 0]!;
    }
    if (check !== 0) throw bad(nonFiniteMessage(i, opts.what));
    if (x < minX) minX = x;
    if (x > maxX) maxX = x;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
    if (z < minZ) minZ = z;
    if (z > maxZ) maxZ = z;
    const px = Math.round(x * scale), py = Math.round(y * scale), pz = Math.round(z * scale);
    if (px >= limit || px < -limit || py >= limit || py < -limit || pz >= limit || pz < -limit) {
      const p = px >= limit || px < -limit ? x : py >= limit || py < -limit ? y : z;
      throw bad(`Splat ${i} lies at ${p}, outside the ±${limit / scale} range SPZ can store with ${bits} fractional bits`);
    }
    o = oPos + i * 9;
    out[o] = px & 0xff;
    out[o + 1] = (px >> 8) & 0xff;
    out[o + 2] = (px >> 16) & 0xff;
    out[o + 3] = py & 0xff;
    out[o + 4] = (py >> 8) & 0xff;
    out[o + 5] = (py >> 16) & 0xff;
    out[o + 6] = pz & 0xff;
    out[o + 7] = (pz >> 8) & 0xff;
    out[o + 8] = (pz >> 16) & 0xff;
    out[oAlpha + i] = toU8((1 / (1 + Math.exp(-op))) * 255);
    o = oColor + i * 3;
    out[o] = toU8(d0 * colorScale + 127.5);
    out[o + 1] = toU8(d1 * colorScale + 127.5);
    out[o + 2] = toU8(d2 * colorScale + 127.5);
    o = oScale + i * 3;
    out[o] = toU8((s0 + 10) * 16);
    out[o + 1] = toU8((s1 + 10) * 16);
    out[o + 2] = toU8((s2 + 10) * 16);
    const len = Math.sqrt(rx * rx + ry * ry + rz * rz + rw * rw);
    if (len === 0) {
      rx = ry = rz = 0;
      rw = 1;
    } else {
      rx /= len; ry /= len; rz /= len; rw /= len;
    }
    if (version >= 3) {
      // Smallest three: the largest component's index in the top 2 bits, then the other three
      // (in index order) as a sign bit and 9 bits of |v| / √½, the largest made positive.
      const ax = Math.abs(rx), ay = Math.abs(ry), az = Math.abs(rz), aw = Math.abs(rw);
      let largest = 0;
      let big = ax;
      if (ay > big) { largest = 1; big = ay; }
      if (az > big) { largest = 2; big = az; }
      if (aw > big) largest = 3;
      const flip = (largest === 0 ? rx : largest === 1 ? ry : largest === 2 ? rz : rw) < 0 ? -1 : 1;
      const qx = rx * flip, qy = ry * flip, qz = rz * flip, qw = rw * flip;
      const comp =
        largest === 0 ? (((((0 << 10) | smallest(qy)) << 10) | smallest(qz)) << 10) | smallest(qw)
        : largest === 1 ? (((((1 << 10) | smallest(qx)) << 10) | smallest(qz)) << 10) | smallest(qw)
        : largest === 2 ? (((((2 << 10) | smallest(qx)) << 10) | smallest(qy)) << 10) | smallest(qw)
        : (((((3 << 10) | smallest(qx)) << 10) | smallest(qy)) << 10) | smallest(qz);
      o = oRot + i * 4;
      out[o] = comp & 0xff;
      out[o + 1] = (comp >>> 8) & 0xff;
      out[o + 2] = (comp >>> 16) & 0xff;
      out[o + 3] = (comp >>> 24) & 0xff;
    } else {
      const sign = rw < 0 ? -127.5 : 127.5;
      o = oRot + i * 3;
      out[o] = toU8(rx * sign + 127.5);
      out[o + 1] = toU8(ry * sign + 127.5);
      out[o + 2] = toU8(rz * sign + 127.5);
    }
  }
  const bounds: PackedSpz["bounds"] = n ? { min: [minX, minY, minZ], max: [maxX, maxY, maxZ] } : { min: [0, 0, 0], max: [0, 0, 0] };
  return { raw: out, bounds };
}

/** One of the three smaller quaternion components in 10 bits: a sign bit and 9 bits of |v| / √½. */
const smallest = (v: number) => ((v < 0 ? 1 : 0) << 9) | Math.min(511, Math.floor(511 * (Math.abs(v) / SQRT1_2) + 0.5));

// Math.round for x ≥ 0 is floor(x + 0.5).
const toU8 = (x: number) => (x < 0 ? 0 : x > 255 ? 255 : (x + 0.5) | 0);

/** Packs a cloud into the uncompressed SPZ bytes (header and planes). */
export function packSpz(cloud: SplatCloud, opts: SpzOptions = {}): Buffer {
  return packSplats(cloudFloats(cloud), cloud.count, cloud.shDegree, { ...opts, what: "the cloud" }).raw;
}

const gzipOptions = (opts: SpzOptions) => ({ level: opts.level ?? 6, strategy: opts.strategy ?? zlib.constants.Z_RLE });

export function encodeSpz(cloud: SplatCloud, opts: SpzOptions = {}): Buffer {
  return zlib.gzipSync(packSpz(cloud, opts), gzipOptions(opts));
}

/** A PLY (checked as `parsePly` checks it) straight to SPZ, without a cloud in between. */
export async function convertPlyToSpz(file: Uint8Array, opts: SpzOptions & { maxSplats?: number } = {}): Promise<{ spz: Buffer; count: number; shDegree: number; bounds: PackedSpz["bounds"] }> {
  const header = parsePlyHeader(file.subarray(0, MAX_HEADER_BYTES), file.byteLength, opts);
  const version = opts.version ?? 3;
  const { raw, bounds } = packSplats(readPlyFloats(file, header), header.count, header.shDegree, opts);
  const spz = await gzipPieces(raw, planeEnds(header.count, version, header.shDegree), { level: opts.level, strategy: opts.strategy });
  return { spz, count: header.count, shDegree: header.shDegree, bounds };
}

/** Where each plane ends in the uncompressed SPZ (the header goes with the positions). */
function planeEnds(n: number, version: number, shDegree: number): { end: number; strategy: number }[] {
  const { Z_RLE, Z_HUFFMAN_ONLY } = zlib.constants;
  const ends: { end: number; strategy: number }[] = [];
  let at = 16;
  // Positions and rotations are near-uniform bytes without runs: Huffman alone codes them as
  // well as run-length does, faster. Alphas, colours, scales and SH have runs (saturated
  // alphas, untrained SH all 128), which run-length coding shrinks far below Huffman's 1 bit a byte.
  for (const [bytes, strategy] of [[n * 9, Z_HUFFMAN_ONLY], [n * 7, Z_RLE], [n * (version >= 3 ? 4 : 3), Z_HUFFMAN_ONLY], [n * SH_REST_PER_CHANNEL[shDegree] * 3, Z_RLE]] as const) {
    at += bytes;
    ends.push({ end: at, strategy });
  }
  return ends;
}

function readHeader(raw: Buffer, maxSplats: number) {
  const magic = raw.readUInt32LE(0);
  if (magic !== SPZ_MAGIC) throw bad("This is not an SPZ file: the decompressed data does not start with NGSP");
  const version = raw.readUInt32LE(4);
  if (version !== 2 && version !== 3) throw bad(`This SPZ is version ${version}; only versions 2 and 3 are accepted — re-export with an SPZ writer of version 3 or earlier`);
  const count = raw.readUInt32LE(8);
  const shDegree = raw[12];
  if (shDegree > 3) throw bad(`The SPZ header gives SH degree ${shDegree}; only 0 to 3 exist`);
  const fractionalBits = raw[13];
  if (fractionalBits > 23) throw bad(`The SPZ header gives ${fractionalBits} fractional bits; positions have only 24 bits`);
  if (count > maxSplats) throw bad(`The SPZ claims ${count} splats, more than the limit of ${maxSplats}; decimate the scene before uploading`);
  return { version, count, shDegree, fractionalBits, antialiased: (raw[14] & 1) === 1, expected: 16 + count * bytesPerSplat(version, shDegree) };
}

/**
 * Inflates with a byte cap: once the header is out, the output may not exceed what its
 * splat count implies, so a zip bomb stops after at most one chunk past that size.
 */
export async function inflateSpz(file: Uint8Array, opts: { maxSplats?: number } = {}): Promise<Buffer> {
  const maxSplats = opts.maxSplats ?? MAX_SPLATS;
  return new Promise((resolve, reject) => {
    const gunzip = zlib.createGunzip();
    const chunks: Buffer[] = [];
    let total = 0;
    let cap = 16;
    let header: ReturnType<typeof readHeader> | null = null;
    let done = false;
    const fail = (e: unknown) => {
      if (done) return;
      done = true;
      gunzip.destroy();
      reject(e instanceof AppError ? e : bad(`This SPZ could not be decompressed (${(e as Error).message}); it must be a gzip stream`));
    };
    gunzip.on("data", (chunk: Buffer) => {
      if (done) return;
      chunks.push(chunk);
      total += chunk.length;
      try {
        if (!header && total >= 16) {
          header = readHeader(Buffer.concat(chunks), maxSplats);
          cap = header.expected;
        }
        if (total > cap) fail(bad(`This SPZ decompresses to more than the ${cap} bytes its header implies; it is corrupt or a decompression bomb`));
      } catch (e) {
        fail(e);
      }
    });
    gunzip.on("error", fail);
    gunzip.on("end", () => {
      if (done) return;
      done = true;
      const raw = Buffer.concat(chunks, total);
      if (raw.length < 16) return reject(bad("This SPZ is shorter than its 16-byte header"));
      if (raw.length !== cap) return reject(bad(`This SPZ is cut short: its header implies ${cap} bytes once decompressed, it holds ${raw.length}`));
      resolve(raw);
    });
    gunzip.end(file);
  });
}

/** Unpacks decompressed SPZ bytes (version 2 or 3). */
export function unpackSpz(raw: Buffer, opts: { maxSplats?: number } = {}): DecodedSpz {
  if (raw.length < 16) throw bad("This SPZ is shorter than its 16-byte header");
  const h = readHeader(raw, opts.maxSplats ?? MAX_SPLATS);
  if (raw.length !== h.expected) throw bad(`This SPZ header implies ${h.expected} bytes of data but it holds ${raw.length}`);
  const n = h.count;
  const restN = SH_REST_PER_CHANNEL[h.shDegree];
  const cloud: DecodedSpz = {
    count: n, shDegree: h.shDegree, version: h.version, fractionalBits: h.fractionalBits, antialiased: h.antialiased,
    positions: new Float32Array(n * 3), scales: new Float32Array(n * 3), rotations: new Float32Array(n * 4),
    alphas: new Float32Array(n), colors: new Float32Array(n * 3), sh: new Float32Array(n * restN * 3),
  };
  let o = 16;
  const scale = 1 / (1 << h.fractionalBits);
  for (let i = 0; i < n * 3; i++, o += 3) cloud.positions[i] = (((raw[o] | (raw[o + 1] << 8) | (raw[o + 2] << 16)) << 8) >> 8) * scale;
  for (let i = 0; i < n; i++) {
    const a = Math.min(Math.max(raw[o++] / 255, 1e-6), 1 - 1e-6);
    cloud.alphas[i] = Math.log(a / (1 - a));
  }
  for (let i = 0; i < n * 3; i++) cloud.colors[i] = (raw[o++] / 255 - 0.5) / COLOR_SCALE;
  for (let i = 0; i < n * 3; i++) cloud.scales[i] = raw[o++] / 16 - 10;
  for (let i = 0; i < n; i++) {
    const q = cloud.rotations.subarray(i * 4, i * 4 + 4);
    if (h.version >= 3) {
      let comp = raw.readUInt32LE(o);
      o += 4;
      const largest = comp >>> 30;
      let sum = 0;
      for (let k = 3; k >= 0; k--) {
        if (k === largest) continue;
        const mag = comp & 511;
        const neg = (comp >>> 9) & 1;
        comp >>>= 10;
        q[k] = (SQRT1_2 * mag) / 511 * (neg ? -1 : 1);
        sum += q[k] * q[k];
      }
      q[largest] = Math.sqrt(Math.max(0, 1 - sum));
    } else {
      const x = raw[o++] / 127.5 - 1, y = raw[o++] / 127.5 - 1, z = raw[o++] / 127.5 - 1;
      q[0] = x; q[1] = y; q[2] = z;
      q[3] = Math.sqrt(Math.max(0, 1 - x * x - y * y - z * z));
    }
  }
  for (let i = 0; i < n * restN * 3; i++) cloud.sh[i] = (raw[o++] - 128) / 128;
  return cloud;
}

export async function decodeSpz(file: Uint8Array, opts: { maxSplats?: number } = {}): Promise<DecodedSpz> {
  return unpackSpz(await inflateSpz(file, opts), opts);
}
