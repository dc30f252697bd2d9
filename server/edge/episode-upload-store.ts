import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import type { z } from "zod";
import { DataStore, ERRORS, Upload } from "@tus/server";
import { AppError } from "../errors";
import { archiveLayout, BLOCK, segmentAt, tarHeaderName, tarHeaderSize, type ArchiveLayout, type Segment } from "./archive-layout";
import { hashFileInto } from "./file-hash";
import { offsetCheckpoints } from "./offset-checkpoints";
import { MANIFEST_NAME, episodeManifestSchema, parseEntryPath, uploadMetadataSchema, type EpisodeManifest } from "./edge.schemas";

// A tus data store that unpacks an episode archive as its bytes arrive. The archive's layout is
// fixed by its manifest (archive-layout.ts), so once the manifest is in, every later byte has
// one place: a header or padding (checked to be exactly what the manifest implies), a position
// in one file, written there at once beside its final name (`<name>.part-<upload id>`) and
// hashed on the way, or the sha256 sums that close the archive. When the sums are in, every
// file's hash is checked against its line; a file that differs fails the upload, naming it.
// Nothing is stored twice and nothing is read back, except the part of a file already written
// when an upload resumes in its middle (and, after the machine restarted or on another machine
// sharing the folder, the files received before, hashed again from disk). When the last byte is
// in, `commit` moves the checked files into place.
//
// Per upload, in `dir`: <id>.json (size, metadata, bytes received), <id>.head (the manifest's
// header and the manifest), <id>.sums (the sums as they arrive) and <id>.digests (the sha256 of
// each file received whole, so the request that brings the sums need not read them back).
// Nothing of an upload is kept in memory between requests: with several web processes and no
// sticky routing, each request may land on a process that has never seen the upload before. The offset is saved as the
// bytes reach the disk — every CHECKPOINT_BYTES while a request goes on, and when it ends — and
// never past a write still on its way, so a portal process killed mid-request resumes from what
// its files hold. Bytes written after the last count are cut off when the upload resumes, so the
// files and the offset agree again. After the last byte the record stays (committed) until it
// expires: an agent that missed the answer asks again and hears the upload is done.

const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
// How much may arrive between two saves of the offset: what a killed portal process receives again.
const CHECKPOINT_BYTES = 1024 * 1024;
const WRITE_BEHIND_BYTES = 32 * 1024 * 1024;
// Files open at once for writes on their way: many tiny files must not use up descriptors (nor
// keep many network chunks alive through their small pieces).
const WRITE_BEHIND_FILES = 32;

type Info = { id: string; size?: number; offset: number; metadata?: Record<string, string | null>; creation_date?: string; committed?: boolean; files?: number };

/** A refusal tus sends as the response (status and body). */
export type TusRefusal = { status_code: number; body: string };
export const tusRefusal = (status: number, message: string): TusRefusal => ({ status_code: status, body: `${message}\n` });
export const isRefusal = (error: unknown): error is TusRefusal => typeof error === "object" && error !== null && "status_code" in error;
export const refusalFrom = (error: unknown): TusRefusal => (error instanceof AppError ? tusRefusal(error.status, error.message) : tusRefusal(400, (error as Error).message));

/** Checks a manifest against the upload it came with: same episode, allowed names, no repeats, within the limit. */
export function checkManifest(manifest: EpisodeManifest, expected: { repoId: string; episodeIndex: number; maxBytes: number }): void {
  if (manifest.repoId !== expected.repoId || manifest.episodeIndex !== expected.episodeIndex) {
    throw new AppError("BAD_REQUEST", `The archive's manifest is for ${manifest.repoId} episode ${manifest.episodeIndex}, but the upload said ${expected.repoId} episode ${expected.episodeIndex}`);
  }
  const seen = new Set<string>();
  let total = 0;
  let hasData = false;
  for (const file of manifest.files) {
    const entry = parseEntryPath(file.path);
    if (!entry) throw new AppError("BAD_REQUEST", `"${file.path}" is not a file an episode may contain: expected images/<camera>/episode-<n>/frame-<i>.png, videos/<camera>/episode-<n>.mp4 or data/episode-<n>.jsonl|parquet`);
    if (entry.episodeIndex !== expected.episodeIndex) throw new AppError("BAD_REQUEST", `"${file.path}" belongs to episode ${entry.episodeIndex}, not to episode ${expected.episodeIndex} being uploaded`);
    if (seen.has(file.path)) throw new AppError("BAD_REQUEST", `"${file.path}" is listed twice in the manifest`);
    seen.add(file.path);
    hasData ||= entry.kind === "data";
    total += file.size;
  }
  if (!hasData) throw new AppError("BAD_REQUEST", `Episode ${expected.episodeIndex} has no data/episode-<n>.jsonl or .parquet file with its per-frame timestamps, state and action`);
  if (total > expected.maxBytes) throw new AppError("PAYLOAD_TOO_LARGE", `Episode ${expected.episodeIndex} holds ${total} bytes, more than the ${expected.maxBytes} an upload may (EDGE_MAX_UPLOAD_BYTES)`);
}

/** `name` inside `root`, or an error: defence in depth behind the name patterns. */
function inside(root: string, name: string): string {
  const target = path.resolve(root, name);
  if (!target.startsWith(root + path.sep)) throw new AppError("BAD_REQUEST", `"${name}" would be written outside the episode's folder`);
  return target;
}

interface Unpacking {
  manifest: EpisodeManifest;
  layout: ArchiveLayout;
  /** Final path of each manifest file, in manifest order. */
  targets: string[];
  /** sha256 of each file known to be whole on disk as received (the others are hashed from disk). */
  digests: (string | undefined)[];
}

/**
 * An upload's archive head (the manifest's tar header and the manifest) read and checked against
 * the upload: its announced sha256, the manifest's rules (checkManifest), and the archive's size.
 */
export function parseArchiveHead({ metadata, size, head, maxBytes }: { metadata: Record<string, string | null> | undefined; size: number | undefined; head: Buffer; maxBytes: number }): {
  manifest: EpisodeManifest;
  layout: ArchiveLayout;
  orgId: string;
  meta: z.infer<typeof uploadMetadataSchema>;
} {
  const parsedMeta = uploadMetadataSchema.safeParse(metadata);
  // An upload begun by an agent of another version, say: it cannot be finished, only begun again.
  if (!parsedMeta.success) throw new AppError("BAD_REQUEST", `The upload's metadata is not valid: ${parsedMeta.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
  const meta = parsedMeta.data;
  const manifestBytes = head.subarray(BLOCK);
  if (crypto.createHash("sha256").update(manifestBytes).digest("hex") !== meta.manifestSha256) throw new AppError("BAD_REQUEST", "The archive's manifest does not match the sha256 the upload announced; upload the episode again");
  let json: unknown = null;
  try {
    json = JSON.parse(manifestBytes.toString("utf8"));
  } catch {
    /* reported below */
  }
  const parsed = episodeManifestSchema.safeParse(json);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `The archive's manifest is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
  const manifest = parsed.data;
  checkManifest(manifest, { repoId: meta.repoId, episodeIndex: meta.episodeIndex, maxBytes });
  const layout = archiveLayout(manifestBytes, manifest.files);
  if (layout.size !== size) throw new AppError("BAD_REQUEST", `The upload is ${size} bytes, but its manifest makes an archive of ${layout.size}; upload the episode again`);
  // The organisation was recorded by the portal when the upload began, never taken from the client.
  const orgId = metadata?.orgId;
  if (!orgId) throw new AppError("BAD_REQUEST", "The upload does not say which organisation began it; upload the episode again");
  return { manifest, layout, orgId, meta };
}

/**
 * Where the head ends, from what of it has arrived: null until the manifest's tar header is in;
 * refuses a first entry that is not the manifest, or a manifest over MAX_MANIFEST_BYTES.
 */
export function headEndOf(head: Buffer): number | null {
  if (head.length < BLOCK) return null;
  if (tarHeaderName(head) !== MANIFEST_NAME) throw new AppError("BAD_REQUEST", `The archive must start with ${MANIFEST_NAME}`);
  const manifestSize = tarHeaderSize(head);
  if (manifestSize > MAX_MANIFEST_BYTES) throw new AppError("BAD_REQUEST", `The archive's manifest is ${manifestSize} bytes, more than ${MAX_MANIFEST_BYTES}`);
  return BLOCK + manifestSize;
}

/**
 * The stretch of the archive byte `pos` is in, and the part of `rest` that falls in it; a part of
 * the fixed bytes (headers, padding, the manifest) must be exactly what the layout says.
 */
export function nextPiece(layout: ArchiveLayout, pos: number, rest: Buffer): { segment: Segment; within: number; piece: Buffer } {
  const segment = layout.segments[segmentAt(layout, pos)];
  if (!segment || segment.start > pos) throw new AppError("BAD_REQUEST", "The upload sent more bytes than its archive holds");
  const within = pos - segment.start;
  const piece = rest.subarray(0, segment.length - within);
  if (segment.kind === "bytes" && !piece.equals(segment.bytes.subarray(within, within + piece.length))) {
    throw new AppError("BAD_REQUEST", `The archive is not laid out as its manifest says (at byte ${pos}); upload it with gantry-agent`);
  }
  return { segment, within, piece };
}

/** A line of the sums for each file, checked against the manifest's order; returns each file's sha256. */
export function readSums(manifest: EpisodeManifest, text: Buffer): string[] {
  const lines = text.toString("utf8").split("\n");
  return manifest.files.map((file, i) => {
    const m = /^([0-9a-f]{64}) {2}(.*)$/.exec(lines[i] ?? "");
    if (!m || m[2] !== file.path) throw new AppError("BAD_REQUEST", `The archive's sha256 sums do not list "${file.path}" where the manifest does (line ${i + 1}); upload it with gantry-agent`);
    return m[1];
  });
}

export const damagedFile = (file: { path: string }) => new AppError("BAD_REQUEST", `"${file.path}" arrived damaged (or changed on the robot while it was sent): its sha256 does not match the agent's; upload the episode again`);

/** This boot of the machine, or null where the kernel does not say. */
function readBootId(): string | null {
  try {
    return fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || null;
  } catch {
    return null;
  }
}

export class EpisodeUploadStore extends DataStore {
  private readonly bootId: string | null;

  constructor(
    private readonly opts: {
      dir: string;
      rawDir: (orgId: string, repoId: string) => string;
      maxBytes: number;
      expireAfterMs: number;
      /**
       * A file's recorded sha256 is trusted only by a process of the same machine and boot: bytes
       * handed to the operating system before a power loss may never have reached the disk, and
       * another machine's (over a shared folder) are read back to be sure. Tests pass another to
       * stand for a reboot.
       */
      bootId?: string | null;
    },
  ) {
    super();
    this.bootId = opts.bootId === undefined ? readBootId() : opts.bootId;
    this.extensions = ["creation", "creation-with-upload", "termination", "expiration"];
    fs.mkdirSync(opts.dir, { recursive: true });
  }

  private infoPath = (id: string) => path.join(this.opts.dir, `${id}.json`);
  private headPath = (id: string) => path.join(this.opts.dir, `${id}.head`);
  private sumsPath = (id: string) => path.join(this.opts.dir, `${id}.sums`);
  private digestsPath = (id: string) => path.join(this.opts.dir, `${id}.digests`);
  private partOf = (target: string, id: string) => `${target}.part-${id}`;

  private async readInfo(id: string): Promise<Info> {
    try {
      return JSON.parse(await fs.promises.readFile(this.infoPath(id), "utf8")) as Info;
    } catch {
      throw ERRORS.FILE_NOT_FOUND;
    }
  }

  private async writeInfo(info: Info): Promise<void> {
    const temp = `${this.infoPath(info.id)}.tmp`;
    await fs.promises.writeFile(temp, JSON.stringify(info));
    await fs.promises.rename(temp, this.infoPath(info.id));
  }

  async create(upload: Upload): Promise<Upload> {
    await fs.promises.writeFile(this.headPath(upload.id), "");
    await this.writeInfo({ id: upload.id, size: upload.size, offset: 0, metadata: upload.metadata, creation_date: upload.creation_date ?? new Date().toISOString() });
    return upload;
  }

  async getUpload(id: string): Promise<Upload> {
    const info = await this.readInfo(id);
    return new Upload({ id, size: info.size, offset: info.offset, metadata: info.metadata, creation_date: info.creation_date });
  }

  async declareUploadLength(): Promise<void> {
    throw tusRefusal(400, "Send the archive's length with Upload-Length; deferred lengths are not accepted");
  }

  getExpiration(): number {
    return this.opts.expireAfterMs;
  }

  async remove(id: string): Promise<void> {
    const info = await this.readInfo(id);
    // The whole head, not only the counted part: a request that failed may have written files
    // before its count reached the disk.
    const unpacking = await this.unpackingOf(info, { isWholeHead: true }).catch(() => null);
    for (const target of unpacking?.targets ?? []) await fs.promises.rm(this.partOf(target, id), { force: true });
    await fs.promises.rm(this.headPath(id), { force: true });
    await fs.promises.rm(this.sumsPath(id), { force: true });
    await fs.promises.rm(this.digestsPath(id), { force: true });
    await fs.promises.rm(this.infoPath(id), { force: true });
  }

  /**
   * Removes uploads nobody has written to for `expireAfterMs` — since the last bytes were saved,
   * not since the upload began, so a long one still coming is not cut off. `hold` runs each
   * removal holding the upload's lock, or answers null when a request holds it (the upload is
   * then left for the next sweep).
   */
  async deleteExpired({ hold }: { hold?: (id: string, work: () => Promise<boolean>) => Promise<boolean | null> } = {}): Promise<number> {
    let removed = 0;
    for (const name of await fs.promises.readdir(this.opts.dir)) {
      if (!name.endsWith(".json")) continue;
      const id = name.slice(0, -5);
      const removeIfExpired = async () => {
        const info = await this.readInfo(id).catch(() => null);
        // A complete upload not yet committed is left to the request finishing it.
        if (!info || (info.offset === info.size && !info.committed) || !info.creation_date) return false;
        const saved = await fs.promises.stat(this.infoPath(id)).then((s) => s.mtimeMs, () => 0);
        if (Date.now() - Math.max(new Date(info.creation_date).getTime(), saved) < this.opts.expireAfterMs) return false;
        await this.remove(id);
        return true;
      };
      if ((await (hold ? hold(id, removeIfExpired) : removeIfExpired()).catch(() => false)) === true) removed++;
    }
    return removed;
  }

  /** The manifest and layout of an upload, once its head has arrived (null before). */
  private async unpackingOf(info: Info, { isWholeHead = false } = {}): Promise<Unpacking | null> {
    const head = await fs.promises.readFile(this.headPath(info.id)).catch(() => Buffer.alloc(0));
    const usable = isWholeHead ? head : head.subarray(0, info.offset);
    if (usable.length < BLOCK) return null;
    const manifestSize = tarHeaderSize(usable);
    if (usable.length < BLOCK + manifestSize) return null;
    return this.readManifest(info, usable.subarray(0, BLOCK + manifestSize));
  }

  private readManifest(info: Info, head: Buffer): Unpacking {
    const { manifest, layout, orgId, meta } = parseArchiveHead({ metadata: info.metadata, size: info.size, head, maxBytes: this.opts.maxBytes });
    const root = path.resolve(this.opts.rawDir(orgId, meta.repoId));
    return { manifest, layout, targets: manifest.files.map((f) => inside(root, f.path)), digests: new Array(manifest.files.length) };
  }

  /**
   * Before a request writes: the recorded sha256 of every file that ends at or before the offset
   * is taken (when recorded on this machine since it booted); every other line is dropped, since
   * the files from the offset on are written again and hashed afresh.
   */
  private async takeDigests(info: Info, unpacking: Unpacking | null): Promise<void> {
    const file = this.digestsPath(info.id);
    const text = await fs.promises.readFile(file, "utf8").catch(() => "");
    if (!text) return;
    const ends = new Map<number, number>();
    for (const segment of unpacking?.layout.segments ?? []) if (segment.kind === "file") ends.set(segment.fileIndex, segment.start + segment.length);
    const kept: string[] = [];
    for (const line of text.split("\n")) {
      const m = /^(\d+) ([0-9a-f]{64}) (\S+)$/.exec(line);
      if (!m || !unpacking || m[3] !== this.bootId) continue;
      const index = Number(m[1]);
      const end = ends.get(index);
      if (end === undefined || end > info.offset) continue;
      unpacking.digests[index] = m[2];
      kept.push(`${line}\n`);
    }
    if (kept.length === 0) await fs.promises.rm(file, { force: true });
    else if (kept.join("").length !== text.length) {
      await fs.promises.writeFile(`${file}.tmp`, kept.join(""));
      await fs.promises.rename(`${file}.tmp`, file);
    }
  }

  /**
   * Makes the files agree with the offset before more bytes come: bytes stored after the last
   * count (a portal process killed mid-request) are cut off; a file holding less than was counted
   * (the machine lost what it had not flushed) lowers the offset instead, answered with 409 so the
   * agent asks again where the upload stands.
   */
  private async settle(info: Info, unpacking: Unpacking | null): Promise<void> {
    if (info.size !== undefined && info.offset >= info.size) return;
    let file = this.headPath(info.id);
    let start = 0;
    if (unpacking) {
      const segment = unpacking.layout.segments[segmentAt(unpacking.layout, info.offset)];
      if (!segment || segment.kind === "bytes") return;
      file = segment.kind === "checksums" ? this.sumsPath(info.id) : this.partOf(unpacking.targets[segment.fileIndex], info.id);
      start = segment.start;
    }
    const within = info.offset - start;
    const held = await fs.promises.stat(file).then(
      (s) => s.size,
      () => 0,
    );
    if (held < within) {
      await this.writeInfo({ ...info, offset: start + held });
      throw tusRefusal(409, `The portal holds ${start + held} bytes of this upload, fewer than the ${info.offset} it had counted; ask again where it stands and resume from there`);
    }
    if (held > within) await fs.promises.truncate(file, within);
  }

  async write(readable: Readable, id: string, offset: number): Promise<number> {
    const info = await this.readInfo(id);
    // Finished already: tus lets only an empty request through, which finishes it again (harmless).
    if (info.committed) return offset;
    let pos = offset;
    let unpacking: Unpacking | null = null;
    // Disk writes are not awaited one by one: up to WRITE_BEHIND_BYTES of them may be on their
    // way while the next bytes are read from the network. A write that fails marks where the
    // stored bytes end (the offset saved is never past it), and the upload stops there.
    const pending: { done: Promise<void>; bytes: number }[] = [];
    let pendingBytes = 0;
    let failedAt = Infinity;
    let openFiles = 0;
    let writeError: unknown = null;
    // File writes on their way, in the order they were started: the offset saved while the
    // request goes on is the first of them not yet done, so it never counts a byte not on disk.
    const inFlight: { at: number; isDone: boolean }[] = [];
    let saved = offset;
    // Lines for <id>.digests of files whose every write is done, appended with each save.
    let digestLines: string[] = [];
    const saveDigests = async () => {
      if (digestLines.length === 0 || !this.bootId) return;
      const text = digestLines.join("");
      digestLines = [];
      await fs.promises.appendFile(this.digestsPath(id), text);
    };
    // No save may land after the request's own last word on the offset.
    const { checkpoint, end: endCheckpoints } = offsetCheckpoints({
      every: CHECKPOINT_BYTES,
      saved: () => saved,
      offsetNow: () => Math.min(failedAt, inFlight.length ? inFlight[0].at : pos),
      save: async (at) => {
        await saveDigests();
        await this.writeInfo({ ...info, offset: at });
        saved = at;
      },
    });
    const track = (done: Promise<unknown>, bytes: number, at: number) => {
      const entry = at === Infinity ? null : { at, isDone: false };
      if (entry) inFlight.push(entry);
      pending.push({
        done: done.then(
          () => {
            if (!entry) return;
            entry.isDone = true;
            while (inFlight[0]?.isDone) inFlight.shift();
            checkpoint();
          },
          (error) => {
            failedAt = Math.min(failedAt, at);
            writeError ??= error;
          },
        ),
        bytes,
      });
      pendingBytes += bytes;
    };
    const drainTo = async (limit: number, files = 0) => {
      while (pending.length && (pendingBytes > limit || openFiles > files || limit === 0)) {
        const next = pending.shift()!;
        await next.done;
        pendingBytes -= next.bytes;
      }
      if (writeError) throw writeError;
    };
    // The file being written: its handle (once open), its writes so far, and its hash so far.
    let current: { fileIndex: number; handle: Promise<fs.promises.FileHandle>; writes: Promise<unknown>[]; hash: crypto.Hash; digest?: string } | null = null;
    const closeCurrent = () => {
      if (!current) return;
      const { handle, writes, fileIndex, digest } = current;
      current = null;
      track(
        Promise.allSettled(writes)
          .then((results) => {
            // Recorded once every byte of the file is with the operating system, as the offset is.
            if (digest && results.every((r) => r.status === "fulfilled")) digestLines.push(`${fileIndex} ${digest} ${this.bootId}\n`);
          })
          .then(() => handle.then((h) => h.close()))
          .finally(() => openFiles--),
        0,
        Infinity,
      );
    };
    const madeDirs = new Set<string>();
    try {
      unpacking = await this.unpackingOf(info);
      await this.settle(info, unpacking);
      await this.takeDigests(info, unpacking);
      for await (const chunk of readable) {
        let rest = chunk as Buffer;
        while (rest.length) {
          if (!unpacking) {
            // The manifest's header tells how long the head is; then the manifest itself.
            const known = pos >= BLOCK ? await fs.promises.readFile(this.headPath(id)) : null;
            const headEnd = (known && headEndOf(known)) || BLOCK;
            const take = rest.subarray(0, headEnd - pos);
            await fs.promises.appendFile(this.headPath(id), take);
            pos += take.length;
            rest = rest.subarray(take.length);
            checkpoint();
            if (known && pos === headEnd) unpacking = this.readManifest({ ...info, offset: pos }, await fs.promises.readFile(this.headPath(id)));
            continue;
          }
          const { segment, within, piece } = nextPiece(unpacking.layout, pos, rest);
          if (segment.kind === "checksums") {
            closeCurrent();
            await drainTo(0);
            const sums = await fs.promises.open(this.sumsPath(id), within > 0 ? "r+" : "w");
            try {
              await sums.write(piece, 0, piece.length, within);
            } finally {
              await sums.close();
            }
            if (within + piece.length === segment.length) await this.checkSums(id, unpacking, await fs.promises.readFile(this.sumsPath(id)));
          } else if (segment.kind === "file") {
            if (!current || current.fileIndex !== segment.fileIndex) {
              closeCurrent();
              const part = this.partOf(unpacking.targets[segment.fileIndex], id);
              const dir = path.dirname(part);
              if (!madeDirs.has(dir)) {
                await fs.promises.mkdir(dir, { recursive: true });
                madeDirs.add(dir);
              }
              const hash = crypto.createHash("sha256");
              // Resuming inside this file: what it already holds goes into the hash first.
              if (within > 0 && (await hashFileInto(hash, part, within)) !== within) {
                throw new AppError("BAD_REQUEST", `${path.basename(part)} holds fewer bytes than were stored; upload the episode again`);
              }
              const handle = fs.promises.open(part, within > 0 ? "r+" : "w");
              openFiles++;
              handle.catch(() => {}); // reported through the writes that use it
              current = { fileIndex: segment.fileIndex, handle, writes: [], hash };
            }
            const write = current.handle.then((h) => h.write(piece, 0, piece.length, within));
            current.writes.push(write);
            track(write, piece.length, pos);
            current.hash.update(piece);
            if (within + piece.length === segment.length) {
              current.digest = unpacking.digests[segment.fileIndex] = current.hash.digest("hex");
              closeCurrent();
            }
            if (pendingBytes > WRITE_BEHIND_BYTES || openFiles > WRITE_BEHIND_FILES) await drainTo(WRITE_BEHIND_BYTES / 2, WRITE_BEHIND_FILES / 2);
          }
          pos += piece.length;
          rest = rest.subarray(piece.length);
          checkpoint();
        }
      }
      closeCurrent();
      await drainTo(0);
      await endCheckpoints();
      await saveDigests();
    } catch (error) {
      closeCurrent();
      await drainTo(0).catch(() => {});
      await endCheckpoints();
      await saveDigests().catch(() => {}); // the files are hashed from disk instead
      if (isRefusal(error)) throw error;
      if (error instanceof AppError) {
        // The archive itself is bad: resuming cannot mend it. The client starts a new upload.
        await this.remove(id).catch(() => {});
        throw refusalFrom(error);
      }
      // The connection broke (or the disk refused a write): keep what arrived, and say how far it got.
      await this.writeInfo({ ...info, offset: Math.min(pos, failedAt) });
      throw ERRORS.FILE_WRITE_ERROR;
    }
    await this.writeInfo({ ...info, offset: pos });
    return pos;
  }

  /** Every file's sha256 against its line in the sums; the first that differs fails the upload. */
  private async checkSums(id: string, unpacking: Unpacking, text: Buffer): Promise<void> {
    const sums = readSums(unpacking.manifest, text);
    for (const [i, file] of unpacking.manifest.files.entries()) {
      // An empty file has no bytes in the archive, so nothing wrote its part: it is made here.
      if (file.size === 0) await fs.promises.writeFile(this.partOf(unpacking.targets[i], id), "");
      if (unpacking.digests[i] === undefined) {
        const hash = crypto.createHash("sha256");
        await hashFileInto(hash, this.partOf(unpacking.targets[i], id));
        unpacking.digests[i] = hash.digest("hex");
      }
      if (unpacking.digests[i] !== sums[i]) throw damagedFile(file);
    }
  }

  /**
   * After the last byte: moves every checked file into place and marks the upload committed (its
   * record stays until it expires, so asking again says it is done). Committing again, or after
   * a commit cut short, is harmless.
   */
  async commit(id: string): Promise<{ files: number }> {
    const info = await this.readInfo(id);
    if (info.committed) return { files: info.files ?? 0 };
    const unpacking = await this.unpackingOf(info);
    if (!unpacking || info.offset !== info.size) throw new AppError("CONFLICT", "The upload is not complete yet");
    for (const target of unpacking.targets) {
      await fs.promises.rename(this.partOf(target, id), target).catch(async (error: NodeJS.ErrnoException) => {
        // Moved by a commit the portal did not finish: while the upload is recorded, nothing
        // else takes its parts away.
        if (error.code === "ENOENT" && (await fs.promises.stat(target).then(() => true, () => false))) return;
        throw error;
      });
    }
    await this.writeInfo({ ...info, committed: true, files: unpacking.targets.length });
    await fs.promises.rm(this.headPath(id), { force: true });
    await fs.promises.rm(this.sumsPath(id), { force: true });
    await fs.promises.rm(this.digestsPath(id), { force: true });
    return { files: unpacking.targets.length };
  }
}
