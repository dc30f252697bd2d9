import { CHECKSUMS_NAME, MANIFEST_NAME } from "./edge.schemas";

// The byte layout of an episode archive, shared by the agent (which produces it) and the portal
// (which places every byte as it arrives). It is a plain ustar tar — the manifest (every file's
// path and size), the files in manifest order, then their sha256 sums in `sha256sum`'s format —
// with fixed times, owners and modes, so the same manifest always gives the same layout: any
// offset maps to one place in one file, which is what lets an upload resume at any byte and lets
// the portal write each byte straight to where it belongs. The sums come last so the agent
// hashes each file as it sends it, reading the episode once; their length is known up front
// (64 hex digits, two spaces, the path, a newline per file).

export const BLOCK = 512;
export const padTo = (n: number) => (BLOCK - (n % BLOCK)) % BLOCK;
const MAX_FILE_BYTES = 0o77777777777;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

/** A ustar header; names over 100 bytes are split into prefix and name as ustar allows. */
export function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(BLOCK);
  let prefix = "";
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf("/", 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`"${name}" is too long a path for an episode archive`);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  if (size > MAX_FILE_BYTES) throw new Error(`"${name}" is larger than 8 GB, more than one episode file may be`);
  header.write(base, 0, 100, "utf8");
  header.write(octal(0o644, 8), 100, "ascii");
  header.write(octal(0, 8), 108, "ascii");
  header.write(octal(0, 8), 116, "ascii");
  header.write(octal(size, 12), 124, "ascii");
  header.write(octal(0, 12), 136, "ascii");
  header.write("        ", 148, "ascii");
  header.write("0", 156, "ascii");
  header.write("ustar\0", 257, "ascii");
  header.write("00", 263, "ascii");
  header.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(octal(sum, 7) + " ", 148, "ascii");
  return header;
}

/** The size a ustar header announces (for reading the manifest's header before the manifest). */
export function tarHeaderSize(header: Buffer): number {
  return parseInt(header.subarray(124, 136).toString("ascii").replace(/\0.*$/, "").trim() || "0", 8);
}

/** The name a ustar header carries (prefix/name). */
export function tarHeaderName(header: Buffer): string {
  const field = (from: number, to: number) => header.subarray(from, to).toString("utf8").replace(/\0.*$/s, "");
  const prefix = field(345, 500);
  return prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
}

/** One stretch of the archive: fixed bytes (headers, padding, the manifest), a file, or the sums. */
export type Segment = { start: number; length: number } & ({ kind: "bytes"; bytes: Buffer } | { kind: "file"; fileIndex: number } | { kind: "checksums" });

/** The checksums entry: one `<sha256>  <path>` line per file, in manifest order. */
export function checksumsText(files: { path: string }[], digests: string[]): Buffer {
  return Buffer.from(files.map((f, i) => `${digests[i]}  ${f.path}\n`).join(""), "utf8");
}

export const checksumsLength = (files: { path: string }[]) => files.reduce((n, f) => n + 64 + 2 + Buffer.byteLength(f.path) + 1, 0);

export interface ArchiveLayout {
  segments: Segment[];
  size: number;
  /** Where the manifest's region ends: the files start here. */
  headEnd: number;
}

const ZEROS = Buffer.alloc(BLOCK * 2);

export function archiveLayout(manifestBytes: Buffer, files: { path: string; size: number }[]): ArchiveLayout {
  const segments: Segment[] = [];
  let offset = 0;
  const bytes = (b: Buffer) => {
    if (b.length) segments.push({ kind: "bytes", bytes: b, start: offset, length: b.length });
    offset += b.length;
  };
  bytes(tarHeader(MANIFEST_NAME, manifestBytes.length));
  bytes(manifestBytes);
  bytes(ZEROS.subarray(0, padTo(manifestBytes.length)));
  const headEnd = offset;
  for (const [fileIndex, file] of files.entries()) {
    bytes(tarHeader(file.path, file.size));
    if (file.size) segments.push({ kind: "file", fileIndex, start: offset, length: file.size });
    offset += file.size;
    bytes(ZEROS.subarray(0, padTo(file.size)));
  }
  const sums = checksumsLength(files);
  bytes(tarHeader(CHECKSUMS_NAME, sums));
  segments.push({ kind: "checksums", start: offset, length: sums });
  offset += sums;
  bytes(ZEROS.subarray(0, padTo(sums)));
  bytes(ZEROS);
  return { segments, size: offset, headEnd };
}

/** Index of the segment holding byte `offset`. */
export function segmentAt(layout: ArchiveLayout, offset: number): number {
  let lo = 0;
  let hi = layout.segments.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const s = layout.segments[mid];
    if (s.start + s.length <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
