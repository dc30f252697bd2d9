import crypto from "node:crypto";
import fs from "node:fs";
import { Readable } from "node:stream";
import { ARCHIVE_FORMAT, type EpisodeManifest, type UploadMode } from "../server/edge/edge.schemas";
import { archiveLayout, segmentAt } from "../server/edge/archive-layout";
import { AgentError } from "./config";
import type { EpisodeFile } from "./layout";

// An episode travels as one archive (server/edge/archive-layout.ts): the manifest (every file
// with its size and sha256), then the files. Its bytes are fixed by the manifest, so any range
// can be produced again at will: an interrupted upload resumes at the exact byte the portal
// last stored, without a temporary copy on the robot's disk.

const SMALL_FILE = 8 * 1024 * 1024;
// Segments (headers, padding and files alternate) whose files are read ahead of the one sent.
const READ_AHEAD_SEGMENTS = 24;

export interface EpisodeArchive {
  manifest: EpisodeManifest;
  manifestBytes: Buffer;
  manifestSha256: string;
  size: number;
  /** The bytes [start, end) of the archive. */
  range(start: number, end: number): Readable;
}

/** sha256 of every file, several reads at once (they are small and many). */
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
  const layout = archiveLayout(manifestBytes, manifest.files);

  function range(start: number, end: number): Readable {
    end = Math.min(end, layout.size);
    const first = segmentAt(layout, start);
    let last = first;
    while (last + 1 < layout.segments.length && layout.segments[last + 1].start < end) last++;
    // Small files are read a few ahead of the one being sent, so the disk and the network
    // work at the same time instead of taking turns.
    const reads = new Map<number, Promise<Buffer>>();
    let readAhead = first;
    const startReads = (upTo: number) => {
      for (; readAhead <= Math.min(upTo, last); readAhead++) {
        const s = layout.segments[readAhead];
        if (s.kind !== "file" || s.length > SMALL_FILE) continue;
        const file = opts.files[s.fileIndex];
        const read = fs.promises.readFile(file.abs);
        read.catch(() => {}); // awaited in turn below
        reads.set(readAhead, read);
      }
    };
    async function* generate() {
      for (let i = first; i <= last; i++) {
        const s = layout.segments[i];
        const from = Math.max(start, s.start) - s.start;
        const to = Math.min(end, s.start + s.length) - s.start;
        if (s.kind === "bytes") {
          yield s.bytes.subarray(from, to);
          continue;
        }
        const file = opts.files[s.fileIndex];
        if (s.length <= SMALL_FILE) {
          startReads(i + READ_AHEAD_SEGMENTS);
          const data = await reads.get(i)!;
          reads.delete(i);
          if (data.length !== file.size) throw new AgentError(`${file.rel} changed after it was checked; upload the episode again`);
          yield data.subarray(from, to);
        } else {
          yield* fs.createReadStream(file.abs, { start: from, end: to - 1, highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>;
        }
      }
    }
    // tus-js-client sends `size` as the request's Content-Length.
    return Object.assign(Readable.from(generate(), { objectMode: false }), { size: end - start });
  }

  return { manifest, manifestBytes, manifestSha256: crypto.createHash("sha256").update(manifestBytes).digest("hex"), size: layout.size, range };
}
