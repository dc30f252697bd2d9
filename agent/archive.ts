import crypto from "node:crypto";
import fs from "node:fs";
import { Readable } from "node:stream";
import { ARCHIVE_FORMAT, type EpisodeManifest, type UploadMode } from "../server/edge/edge.schemas";
import { archiveLayout, checksumsText, segmentAt } from "../server/edge/archive-layout";
import { hashFileInto } from "../server/edge/file-hash";
import { AgentError } from "./config";
import type { EpisodeFile } from "./layout";

// An episode travels as one archive (server/edge/archive-layout.ts): the manifest (every file
// with its size), the files, then every file's sha256. Its layout is fixed by the manifest, so
// any range can be produced again at will: an interrupted upload resumes at the exact byte the
// portal last stored, without a temporary copy on the robot's disk. Each file is hashed as it is
// read for sending, so the episode is read once; only a resumed upload reads again the files
// it had sent before, to hash them.

const SMALL_FILE = 8 * 1024 * 1024;
// Segments (headers, padding and files alternate) whose files are read ahead of the one sent.
const READ_AHEAD_SEGMENTS = 24;

export interface EpisodeArchive {
  manifest: EpisodeManifest;
  manifestBytes: Buffer;
  /** sha256 of the manifest: names this upload (paths and sizes). */
  manifestSha256: string;
  /** Changes when any file's size or modification time does (or the archive format): resuming needs it unchanged. */
  contentKey: string;
  size: number;
  /** The bytes [start, end) of the archive. */
  range(start: number, end: number): Readable;
}

async function hashFile(file: EpisodeFile): Promise<string> {
  const hash = crypto.createHash("sha256");
  if ((await hashFileInto(hash, file.abs)) !== file.size) throw changed(file);
  return hash.digest("hex");
}

const changed = (file: EpisodeFile) => new AgentError(`${file.rel} changed while it was being uploaded (is it still being written?); upload the episode again when the recording has finished`);

export async function buildEpisodeArchive(opts: { repoId: string; episodeIndex: number; mode: UploadMode; files: EpisodeFile[] }): Promise<EpisodeArchive> {
  const manifest: EpisodeManifest = {
    format: ARCHIVE_FORMAT,
    repoId: opts.repoId,
    episodeIndex: opts.episodeIndex,
    mode: opts.mode,
    files: opts.files.map((f) => ({ path: f.rel, size: f.size })),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const layout = archiveLayout(manifestBytes, manifest.files);
  // sha256 of each file, filled in as files are read whole for sending.
  const digests = new Array<string | undefined>(opts.files.length);
  // A large file sent over several ranges, one after the other: its hash so far and where it
  // stopped, taken up by the range that starts there (a range cut short leaves none behind).
  const carried = new Map<number, { hash: crypto.Hash; upTo: number }>();
  const sha256 = (data: Buffer) => crypto.createHash("sha256").update(data).digest("hex");

  async function checksums(): Promise<Buffer> {
    for (const [i, file] of opts.files.entries()) digests[i] ??= await hashFile(file);
    return checksumsText(manifest.files, digests as string[]);
  }

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
        const read = fs.promises.readFile(opts.files[s.fileIndex].abs);
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
        } else if (s.kind === "checksums") {
          yield (await checksums()).subarray(from, to);
        } else if (s.length <= SMALL_FILE) {
          startReads(i + READ_AHEAD_SEGMENTS);
          const data = await reads.get(i)!;
          reads.delete(i);
          const file = opts.files[s.fileIndex];
          if (data.length !== file.size) throw changed(file);
          digests[s.fileIndex] ??= sha256(data);
          yield data.subarray(from, to);
        } else {
          // Large files (videos) stream, hashed on the way when sent from their start, in one
          // range or in ranges that follow each other.
          const before = carried.get(s.fileIndex);
          carried.delete(s.fileIndex);
          const hash = digests[s.fileIndex] !== undefined ? null : from === 0 ? crypto.createHash("sha256") : before?.upTo === from ? before.hash : null;
          let size = 0;
          for await (const chunk of fs.createReadStream(opts.files[s.fileIndex].abs, { start: from, end: to - 1, highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
            hash?.update(chunk);
            size += chunk.length;
            yield chunk;
          }
          if (size !== to - from) throw changed(opts.files[s.fileIndex]);
          if (hash && to === s.length) digests[s.fileIndex] = hash.digest("hex");
          else if (hash) carried.set(s.fileIndex, { hash, upTo: to });
        }
      }
    }
    return Readable.from(generate(), { objectMode: false });
  }

  const contentKey = crypto
    .createHash("sha256")
    .update(`${ARCHIVE_FORMAT}\n${opts.files.map((f) => `${f.rel}\0${f.size}\0${f.mtimeMs}`).join("\n")}`)
    .digest("hex");
  return { manifest, manifestBytes, manifestSha256: sha256(manifestBytes), contentKey, size: layout.size, range };
}
