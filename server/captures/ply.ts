import { AppError } from "../errors";

// 3D Gaussian Splatting PLY as gsplat and the INRIA code write it: one `vertex` element of
// float32 properties, binary little-endian. Everything is checked from the header and the file
// size before the body is touched, so a hostile file costs at most its header to refuse.

export const MAX_HEADER_BYTES = 64 * 1024;
export const MAX_SPLATS = 20_000_000;

/** SH rest coefficient counts per channel for degrees 0..3 (the file holds three times these). */
export const SH_REST_PER_CHANNEL = [0, 3, 8, 15] as const;

const typeSizes: Record<string, number> = {
  char: 1, int8: 1, uchar: 1, uint8: 1, short: 2, int16: 2, ushort: 2, uint16: 2,
  int: 4, int32: 4, uint: 4, uint32: 4, float: 4, float32: 4, double: 8, float64: 8,
};

export interface PlyHeader {
  headerBytes: number;
  count: number;
  /** Bytes per vertex, the sum of every property including the ones we ignore. */
  stride: number;
  shDegree: number;
  /** Byte offset inside a vertex of each property by name. */
  offsets: Map<string, { offset: number; type: string }>;
}

/** Splats in memory: rotations are (x, y, z, w), sh is per splat [coefficient][channel]. */
export interface SplatCloud {
  count: number;
  shDegree: number;
  positions: Float32Array;
  scales: Float32Array;
  rotations: Float32Array;
  alphas: Float32Array;
  colors: Float32Array;
  sh: Float32Array;
}

const bad = (message: string) => new AppError("BAD_REQUEST", message);

const required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"];

/** Reads and checks the header against the file's total size; the body is not read. */
export function parsePlyHeader(head: Uint8Array, fileBytes: number, opts: { maxSplats?: number } = {}): PlyHeader {
  const maxSplats = opts.maxSplats ?? MAX_SPLATS;
  const window = Buffer.from(head.buffer, head.byteOffset, Math.min(head.byteLength, MAX_HEADER_BYTES)).toString("latin1");
  if (!window.startsWith("ply\n") && !window.startsWith("ply\r\n")) throw bad("This file is not a PLY: it must start with the line `ply`");
  // Header lines may end in CRLF (files written on Windows); the body starts after the line's end.
  const endLine = /(?:^|\n)end_header\r?\n/.exec(window);
  if (!endLine) {
    if (head.byteLength >= MAX_HEADER_BYTES) throw bad(`The PLY header is longer than ${MAX_HEADER_BYTES / 1024} KiB without an end_header line; a splat PLY header is well under 4 KiB`);
    throw bad("The PLY header has no end_header line — the file is cut short or not a PLY");
  }
  const end = endLine.index;
  const headerBytes = endLine.index + endLine[0].length;
  const lines = window.slice(0, end).split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("comment") && !l.startsWith("obj_info"));
  let format = "";
  let count = -1;
  let element = "";
  let stride = 0;
  const offsets = new Map<string, { offset: number; type: string }>();
  for (const line of lines.slice(1)) {
    const words = line.split(/\s+/);
    if (words[0] === "format") format = words[1] ?? "";
    else if (words[0] === "element") {
      element = words[1] ?? "";
      const n = Number(words[2]);
      if (!/^\d+$/.test(words[2] ?? "")) throw bad(`The PLY element line "${line}" has no valid count`);
      if (element === "chunk") throw bad("This is a compressed PLY (its splats are packed in chunks, as SuperSplat exports them); upload an uncompressed splat PLY or an SPZ file instead");
      if (element === "vertex") count = n;
      else if (n > 0) throw bad(`The PLY has a "${element}" element with ${n} entries; a splat PLY holds only vertices — export the splats alone`);
    } else if (words[0] === "property") {
      if (element !== "vertex") continue;
      if (words[1] === "list") throw bad(`The vertex property "${words.at(-1)}" is a list; splat PLY properties must be scalars`);
      const size = typeSizes[words[1] ?? ""];
      if (!size || !words[2]) throw bad(`The PLY property line "${line}" has an unknown type; use float`);
      if (offsets.has(words[2])) throw bad(`The PLY declares the vertex property "${words[2]}" twice`);
      offsets.set(words[2], { offset: stride, type: words[1] });
      stride += size;
    }
  }
  if (format === "ascii") throw bad("This PLY is ASCII; splat upload needs format binary_little_endian 1.0 — re-export it as binary");
  if (format === "binary_big_endian") throw bad("This PLY is big-endian; splat upload needs format binary_little_endian 1.0 — re-export it little-endian");
  if (format !== "binary_little_endian") throw bad(`The PLY format "${format}" is not supported; use binary_little_endian 1.0`);
  if (count < 0) throw bad("The PLY has no vertex element; a splat PLY stores one vertex per splat");
  const missing = required.filter((p) => !offsets.has(p));
  if (missing.length) throw bad(`The PLY lacks the splat properties ${missing.join(", ")}; it does not look like a 3D Gaussian Splatting file`);
  for (const [name, { type }] of offsets) {
    if ((required.includes(name) || name.startsWith("f_rest_")) && type !== "float" && type !== "float32") throw bad(`The PLY property "${name}" is ${type}; splat properties must be float (float32)`);
  }
  let rest = 0;
  while (offsets.has(`f_rest_${rest}`)) rest++;
  const shDegree = SH_REST_PER_CHANNEL.findIndex((n) => n * 3 === rest);
  if (shDegree < 0) throw bad(`The PLY has ${rest} f_rest coefficients; expected 0, 9, 24 or 45 (SH degree 0 to 3)`);
  if (count > maxSplats) throw bad(`The PLY claims ${count} splats, more than the limit of ${maxSplats}; decimate the scene before uploading`);
  const expected = headerBytes + count * stride;
  if (fileBytes < expected) throw bad(`The PLY is cut short: its header declares ${count} splats of ${stride} bytes (${expected} bytes in all) but the file has ${fileBytes} bytes — upload it again`);
  if (fileBytes > expected) throw bad(`The PLY has ${fileBytes - expected} bytes after its ${count} declared splats; the header and the body disagree`);
  return { headerBytes, count, stride, shDegree, offsets };
}

/** Floats a splat needs, in this order: x y z, f_dc 0..2, opacity, scale 0..2, rot x y z w, then f_rest as SPZ orders it ([coefficient][channel]). */
export const splatFields = (shDegree: number) => 14 + SH_REST_PER_CHANNEL[shDegree] * 3;

/**
 * The body as float32s with where each splat's fields lie: after `loadSplats(src, i0, i1)`
 * returned `base`, `f32[base + i * stride + fields[k]]` is field k (in `splatFields` order) of
 * splat i (i0 ≤ i < i1). A body whose floats are 4-byte aligned in memory is read in place. One
 * whose header's length leaves it unaligned (most files: the header is text) is copied a block
 * of splats at a time into a scratch buffer that stays in the cache, so the file is read once.
 * A file with odd-sized extra properties is gathered field by field, once.
 */
export interface PlyFloats {
  f32: Float32Array;
  stride: number;
  fields: Int32Array;
  /** The unaligned body, copied into `f32` a block at a time. */
  body?: Uint8Array;
}

/** Splats per block when an unaligned body is copied: about a megabyte at SH degree 3. */
export const SPLAT_BLOCK = 4096;

const isLittleEndianHost = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export function readPlyFloats(file: Uint8Array, header: PlyHeader): PlyFloats {
  const { count, stride, shDegree, offsets, headerBytes } = header;
  const restN = SH_REST_PER_CHANNEL[shDegree];
  const at = (name: string) => offsets.get(name)!.offset;
  // PLY rot_0 is w; SPZ and the cloud keep (x, y, z, w). f_rest is channel-major in the PLY.
  const names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_1", "rot_2", "rot_3", "rot_0"];
  const byteOffsets = names.map(at);
  for (let j = 0; j < restN; j++) for (let c = 0; c < 3; c++) byteOffsets.push(at(`f_rest_${c * restN + j}`));
  const fields = new Int32Array(byteOffsets.length);
  if (isLittleEndianHost && stride % 4 === 0 && byteOffsets.every((o) => o % 4 === 0)) {
    byteOffsets.forEach((o, k) => (fields[k] = o / 4));
    const start = file.byteOffset + headerBytes;
    if (start % 4 === 0) return { f32: new Float32Array(file.buffer, start, (count * stride) / 4), stride: stride / 4, fields };
    return { f32: new Float32Array((Math.min(count, SPLAT_BLOCK) * stride) / 4), stride: stride / 4, fields, body: file.subarray(headerBytes, headerBytes + count * stride) };
  }
  const n = byteOffsets.length;
  const f32 = new Float32Array(count * n);
  const view = new DataView(file.buffer, file.byteOffset + headerBytes, count * stride);
  for (let i = 0; i < count; i++) for (let k = 0; k < n; k++) f32[i * n + k] = view.getFloat32(i * stride + byteOffsets[k]!, true);
  for (let k = 0; k < n; k++) fields[k] = k;
  return { f32, stride: n, fields };
}

/** Makes splats i0..i1 readable in `src.f32`; answers the index to add to `i * stride`. */
export function loadSplats(src: PlyFloats, i0: number, i1: number): number {
  if (!src.body) return 0;
  const bytes = src.stride * 4;
  new Uint8Array(src.f32.buffer, src.f32.byteOffset, (i1 - i0) * bytes).set(src.body.subarray(i0 * bytes, i1 * bytes));
  return -i0 * src.stride;
}

export const nonFiniteMessage = (splat: number, what = "the PLY") => `Splat ${splat} of ${what} holds a NaN or infinite value; every property must be a finite number`;

/** Parses a whole binary little-endian splat PLY; every value must be finite. */
export function parsePly(file: Uint8Array, opts: { maxSplats?: number } = {}): SplatCloud {
  const header = parsePlyHeader(file.subarray(0, MAX_HEADER_BYTES), file.byteLength, opts);
  const { count, shDegree } = header;
  const restN = SH_REST_PER_CHANNEL[shDegree];
  const src = readPlyFloats(file, header);
  const { f32, stride, fields } = src;
  const cloud: SplatCloud = {
    count, shDegree,
    positions: new Float32Array(count * 3), scales: new Float32Array(count * 3), rotations: new Float32Array(count * 4),
    alphas: new Float32Array(count), colors: new Float32Array(count * 3), sh: new Float32Array(count * restN * 3),
  };
  const { positions, colors, alphas, scales, rotations, sh } = cloud;
  const shN = restN * 3;
  let base = 0;
  for (let i = 0; i < count; i++) {
    if (i % SPLAT_BLOCK === 0) base = loadSplats(src, i, Math.min(count, i + SPLAT_BLOCK));
    const b = base + i * stride;
    // v * 0 is 0 for a finite v and NaN otherwise: one check a splat.
    let check = 0;
    for (let c = 0; c < 3; c++) {
      const p = f32[b + fields[c]!]!, d = f32[b + fields[3 + c]!]!, s = f32[b + fields[7 + c]!]!;
      positions[i * 3 + c] = p;
      colors[i * 3 + c] = d;
      scales[i * 3 + c] = s;
      check += p * 0 + d * 0 + s * 0;
    }
    const a = f32[b + fields[6]!]!;
    alphas[i] = a;
    check += a * 0;
    for (let c = 0; c < 4; c++) {
      const r = f32[b + fields[10 + c]!]!;
      rotations[i * 4 + c] = r;
      check += r * 0;
    }
    for (let k = 0; k < shN; k++) {
      const v = f32[b + fields[14 + k]!]!;
      sh[i * shN + k] = v;
      check += v * 0;
    }
    if (check !== 0) throw bad(nonFiniteMessage(i));
  }
  return cloud;
}

/** The cloud laid out as `readPlyFloats` gives a PLY body, for the one packing loop. */
export function cloudFloats(cloud: SplatCloud): PlyFloats {
  const n = splatFields(cloud.shDegree);
  const shN = n - 14;
  const f32 = new Float32Array(cloud.count * n);
  for (let i = 0; i < cloud.count; i++) {
    const b = i * n;
    for (let c = 0; c < 3; c++) {
      f32[b + c] = cloud.positions[i * 3 + c]!;
      f32[b + 3 + c] = cloud.colors[i * 3 + c]!;
      f32[b + 7 + c] = cloud.scales[i * 3 + c]!;
    }
    f32[b + 6] = cloud.alphas[i]!;
    for (let c = 0; c < 4; c++) f32[b + 10 + c] = cloud.rotations[i * 4 + c]!;
    for (let k = 0; k < shN; k++) f32[b + 14 + k] = cloud.sh[i * shN + k]!;
  }
  return { f32, stride: n, fields: Int32Array.from({ length: n }, (_, k) => k) };
}

/** Writes a cloud as a binary little-endian splat PLY (used by tests and the benchmark). */
export function writePly(cloud: SplatCloud): Buffer {
  const restN = SH_REST_PER_CHANNEL[cloud.shDegree];
  const names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", ...Array.from({ length: restN * 3 }, (_, k) => `f_rest_${k}`), "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"];
  const header = `ply\nformat binary_little_endian 1.0\nelement vertex ${cloud.count}\n${names.map((n) => `property float ${n}\n`).join("")}end_header\n`;
  const floats = new Float32Array(cloud.count * names.length);
  let k = 0;
  for (let i = 0; i < cloud.count; i++) {
    for (let c = 0; c < 3; c++) floats[k++] = cloud.positions[i * 3 + c];
    for (let c = 0; c < 3; c++) floats[k++] = cloud.colors[i * 3 + c];
    for (let c = 0; c < 3; c++) for (let j = 0; j < restN; j++) floats[k++] = cloud.sh[(i * restN + j) * 3 + c];
    floats[k++] = cloud.alphas[i];
    for (let c = 0; c < 3; c++) floats[k++] = cloud.scales[i * 3 + c];
    floats[k++] = cloud.rotations[i * 4 + 3];
    for (let c = 0; c < 3; c++) floats[k++] = cloud.rotations[i * 4 + c];
  }
  return Buffer.concat([Buffer.from(header, "latin1"), Buffer.from(floats.buffer)]);
}
