import crypto from "node:crypto";
import fs from "node:fs";
import { Readable } from "node:stream";
import { ARCHIVE_FORMAT, MANIFEST_NAME, type EpisodeManifest, type UploadMode } from "../server/edge/edge.schemas";
import { AgentError } from "./config";
import type { EpisodeFile } from "./layout";

// An episode travels as one tar stream: the manifest (every file with its size and sha256),
// then the files in order. The stream is deterministic — fixed order, times, owners and modes —
// so any byte range of it can be produced again at will: that is what lets an interrupted
// upload resume at the exact byte the portal last received, without a temporary copy.

const BLOCK = 512;
const SMALL_FILE = 8 * 1024 * 1024;
const padTo = (n: number) => (BLOCK - (n % BLOCK)) % BLOCK;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

/** A ustar header; long names are split into prefix and name as ustar allows. */
export function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(BLOCK);
  let prefix = "";
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf("/", 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new AgentError(`"${name}" is too long a path for an episode archive`);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  if (size > 0o77777777777) throw new AgentError(`"${name}" is larger than 8 GB, more than one episode file may be`);
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

type SegmentBody = { length: number } & ({ bytes: Buffer } | { file: EpisodeFile });
type Segment = SegmentBody & { start: number };

export interface EpisodeArchive {
  manifest: EpisodeManifest;
  manifestBytes: Buffer;
  manifestSha256: string;
  size: number;
  /** The bytes [start, end) of the archive. */
  range(start: number, end: number): Readable;
}

/** sha256 of every file, in parallel reads (they are small and many). */
export async function hashFiles(files: EpisodeFile[], onFile?: (bytes: number) => void): Promise<string[]> {
  const hashes = new Array<string>(files.length);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      const f = files[i];
      const hash = crypto.createHash("sha256");
      let size = 0;
      if (f.size <= SMALL_FILE) {
        const data = await fs.promises.readFile(f.abs);
        hash.update(data);
        size = data.length;
      } else {
        for await (const chunk of fs.createReadStream(f.abs)) {
          hash.update(chunk as Buffer);
          size += (chunk as Buffer).length;
        }
      }
      if (size !== f.size) throw new AgentError(`${f.rel} changed while it was being read (it is still being written?); try again when the recording has finished`);
      hashes[i] = hash.digest("hex");
      onFile?.(size);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return hashes;
}

export async function buildEpisodeArchive(opts: { repoId: string; episodeIndex: number; mode: UploadMode; files: EpisodeFile[]; onHashed?: (bytes: number) => void }): Promise<EpisodeArchive> {
  const hashes = await hashFiles(opts.files, opts.onHashed);
  const manifest: EpisodeManifest = {
    format: ARCHIVE_FORMAT,
    repoId: opts.repoId,
    episodeIndex: opts.episodeIndex,
    mode: opts.mode,
    files: opts.files.map((f, i) => ({ path: f.rel, size: f.size, sha256: hashes[i] })),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const segments: Segment[] = [];
  let offset = 0;
  const push = (s: SegmentBody) => {
    if (s.length === 0) return;
    segments.push({ ...s, start: offset });
    offset += s.length;
  };
  const zeros = Buffer.alloc(BLOCK * 2);
  push({ bytes: tarHeader(MANIFEST_NAME, manifestBytes.length), length: BLOCK });
  push({ bytes: manifestBytes, length: manifestBytes.length });
  push({ bytes: zeros.subarray(0, padTo(manifestBytes.length)), length: padTo(manifestBytes.length) });
  for (const file of opts.files) {
    push({ bytes: tarHeader(file.rel, file.size), length: BLOCK });
    push({ file, length: file.size });
    push({ bytes: zeros.subarray(0, padTo(file.size)), length: padTo(file.size) });
  }
  push({ bytes: zeros, length: BLOCK * 2 });
  const size = offset;

  function range(start: number, end: number): Readable {
    end = Math.min(end, size);
    async function* generate() {
      // The first segment that reaches past `start`.
      let lo = 0;
      let hi = segments.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (segments[mid].start + segments[mid].length <= start) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < segments.length && segments[i].start < end; i++) {
        const s = segments[i];
        const from = Math.max(start, s.start) - s.start;
        const to = Math.min(end, s.start + s.length) - s.start;
        if ("bytes" in s) {
          yield s.bytes.subarray(from, to);
        } else if (s.length <= SMALL_FILE) {
          const data = await fs.promises.readFile(s.file.abs);
          if (data.length !== s.file.size) throw new AgentError(`${s.file.rel} changed after it was checked; upload the episode again`);
          yield data.subarray(from, to);
        } else {
          yield* fs.createReadStream(s.file.abs, { start: from, end: to - 1, highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>;
        }
      }
    }
    const stream = Readable.from(generate(), { objectMode: false });
    // tus-js-client sends `size` as the request's Content-Length.
    return Object.assign(stream, { size: end - start });
  }

  return { manifest, manifestBytes, manifestSha256: crypto.createHash("sha256").update(manifestBytes).digest("hex"), size, range };
}
