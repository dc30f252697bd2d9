import zlib from "node:zlib";
import { AppError } from "../errors";
import { MAX_SPLATS, SH_REST_PER_CHANNEL, type SplatCloud } from "./ply";

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

const toU8 = (x: number) => (x < 0 ? 0 : x > 255 ? 255 : Math.round(x));

// SH rest coefficients are bucketed: 5 bits for degree 1, 4 bits above, as the reference packs them.
function quantizeSh(x: number, bucket: number): number {
  let q = Math.round(x * 128 + 128);
  q = Math.floor((q + bucket / 2) / bucket) * bucket;
  return q < 0 ? 0 : q > 255 ? 255 : q;
}

/** Packs a cloud into the uncompressed SPZ bytes (header and planes). */
export function packSpz(cloud: SplatCloud, opts: SpzOptions = {}): Buffer {
  const version = opts.version ?? 3;
  const bits = opts.fractionalBits ?? 12;
  const n = cloud.count;
  const restN = SH_REST_PER_CHANNEL[cloud.shDegree];
  const out = Buffer.alloc(16 + n * bytesPerSplat(version, cloud.shDegree));
  out.writeUInt32LE(SPZ_MAGIC, 0);
  out.writeUInt32LE(version, 4);
  out.writeUInt32LE(n, 8);
  out[12] = cloud.shDegree;
  out[13] = bits;
  out[14] = opts.antialiased ? 1 : 0;
  out[15] = 0;
  let o = 16;
  const scale = 1 << bits;
  const limit = 1 << 23;
  for (let i = 0; i < n * 3; i++) {
    const v = Math.round(cloud.positions[i] * scale);
    if (v >= limit || v < -limit) throw bad(`Splat ${Math.floor(i / 3)} lies at ${cloud.positions[i]}, outside the ±${limit / scale} range SPZ can store with ${bits} fractional bits`);
    out[o++] = v & 0xff;
    out[o++] = (v >> 8) & 0xff;
    out[o++] = (v >> 16) & 0xff;
  }
  for (let i = 0; i < n; i++) out[o++] = toU8((1 / (1 + Math.exp(-cloud.alphas[i]))) * 255);
  for (let i = 0; i < n * 3; i++) out[o++] = toU8(cloud.colors[i] * (COLOR_SCALE * 255) + 0.5 * 255);
  for (let i = 0; i < n * 3; i++) out[o++] = toU8((cloud.scales[i] + 10) * 16);
  const r = cloud.rotations;
  for (let i = 0; i < n; i++) {
    let x = r[i * 4], y = r[i * 4 + 1], z = r[i * 4 + 2], w = r[i * 4 + 3];
    const len = Math.sqrt(x * x + y * y + z * z + w * w);
    if (len === 0) { x = y = z = 0; w = 1; } else { x /= len; y /= len; z /= len; w /= len; }
    if (version >= 3) {
      const q = [x, y, z, w];
      let largest = 0;
      for (let k = 1; k < 4; k++) if (Math.abs(q[k]) > Math.abs(q[largest])) largest = k;
      const flip = q[largest] < 0;
      let comp = largest;
      for (let k = 0; k < 4; k++) {
        if (k === largest) continue;
        const v = flip ? -q[k] : q[k];
        const mag = Math.min(511, Math.floor(511 * (Math.abs(v) / SQRT1_2) + 0.5));
        comp = ((comp << 10) | ((v < 0 ? 1 : 0) << 9) | mag) >>> 0;
      }
      out.writeUInt32LE(comp >>> 0, o);
      o += 4;
    } else {
      const s = w < 0 ? -127.5 : 127.5;
      out[o++] = toU8(x * s + 127.5);
      out[o++] = toU8(y * s + 127.5);
      out[o++] = toU8(z * s + 127.5);
    }
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < restN; j++) {
      const bucket = j < 3 ? 8 : 16;
      for (let c = 0; c < 3; c++) out[o++] = quantizeSh(cloud.sh[(i * restN + j) * 3 + c], bucket);
    }
  }
  return out;
}

export function encodeSpz(cloud: SplatCloud, opts: SpzOptions = {}): Buffer {
  return zlib.gzipSync(packSpz(cloud, opts), { level: opts.level ?? 6, strategy: opts.strategy ?? zlib.constants.Z_RLE });
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
