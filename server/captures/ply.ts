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
  const end = window.indexOf("end_header\n");
  if (end < 0) {
    if (head.byteLength >= MAX_HEADER_BYTES) throw bad(`The PLY header is longer than ${MAX_HEADER_BYTES / 1024} KiB without an end_header line; a splat PLY header is well under 4 KiB`);
    throw bad("The PLY header has no end_header line — the file is cut short or not a PLY");
  }
  const headerBytes = end + "end_header\n".length;
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

/** Parses a whole binary little-endian splat PLY; every value must be finite. */
export function parsePly(file: Uint8Array, opts: { maxSplats?: number } = {}): SplatCloud {
  const header = parsePlyHeader(file.subarray(0, MAX_HEADER_BYTES), file.byteLength, opts);
  const { count, stride, shDegree, offsets } = header;
  const restN = SH_REST_PER_CHANNEL[shDegree];
  const view = new DataView(file.buffer, file.byteOffset + header.headerBytes, count * stride);
  const at = (name: string) => offsets.get(name)!.offset;
  const pos = [at("x"), at("y"), at("z")];
  const dc = [at("f_dc_0"), at("f_dc_1"), at("f_dc_2")];
  const sc = [at("scale_0"), at("scale_1"), at("scale_2")];
  // PLY rot_0 is w; the cloud keeps (x, y, z, w) like the SPZ reference.
  const rot = [at("rot_1"), at("rot_2"), at("rot_3"), at("rot_0")];
  const op = at("opacity");
  const rest = Array.from({ length: restN * 3 }, (_, k) => at(`f_rest_${k}`));
  const cloud: SplatCloud = {
    count, shDegree,
    positions: new Float32Array(count * 3), scales: new Float32Array(count * 3), rotations: new Float32Array(count * 4),
    alphas: new Float32Array(count), colors: new Float32Array(count * 3), sh: new Float32Array(count * restN * 3),
  };
  let nonFinite = -1;
  const read = (base: number, offset: number) => {
    const v = view.getFloat32(base + offset, true);
    if (!Number.isFinite(v) && nonFinite < 0) nonFinite = base / stride;
    return v;
  };
  for (let i = 0; i < count; i++) {
    const b = i * stride;
    for (let c = 0; c < 3; c++) {
      cloud.positions[i * 3 + c] = read(b, pos[c]);
      cloud.colors[i * 3 + c] = read(b, dc[c]);
      cloud.scales[i * 3 + c] = read(b, sc[c]);
    }
    for (let c = 0; c < 4; c++) cloud.rotations[i * 4 + c] = read(b, rot[c]);
    cloud.alphas[i] = read(b, op);
    // f_rest is channel-major in the PLY (all red, then green, then blue); SPZ wants [coef][channel].
    for (let c = 0; c < 3; c++) for (let j = 0; j < restN; j++) cloud.sh[(i * restN + j) * 3 + c] = read(b, rest[c * restN + j]);
    if (nonFinite >= 0) throw bad(`Splat ${nonFinite} of the PLY holds a NaN or infinite value; every property must be a finite number`);
  }
  return cloud;
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
