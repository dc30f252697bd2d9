import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { PassThrough, Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import tar from "tar-stream";
import type { Db } from "../db";
import { AppError } from "../errors";
import { listFiles } from "../storage/blob-files";
import type { BlobStore } from "../storage/blob-store";
import { localBuildDir } from "./build-files";
import { resolveInside } from "../security/paths";

// Dataset archives: an upload (.tar.gz or .zip) unpacked into a staging folder for import, and
// any dataset exported as a streamed .tar.gz. Every entry name is checked so nothing lands
// outside the staging folder; links and devices are refused; sizes count against a limit.

const MAX_ENTRIES = 200_000;

export class ArchiveTooLargeError extends AppError {
  constructor(maxBytes: number) {
    super("PAYLOAD_TOO_LARGE", `The archive is larger than ${Math.round(maxBytes / 1024 ** 2)} MiB (DATASET_MAX_IMPORT_BYTES), packed or unpacked`);
  }
}

/** A safe relative path for an archive entry, or an error naming it. */
export function safeEntryPath(name: string): string | null {
  const clean = name.replace(/\\/g, "/");
  if (clean.includes("\0")) throw new AppError("BAD_REQUEST", "An archive entry has a NUL in its name");
  if (clean.startsWith("/") || /^[A-Za-z]:/.test(clean)) throw new AppError("BAD_REQUEST", `The archive entry ${JSON.stringify(name).slice(0, 200)} is an absolute path`);
  const parts = clean.split("/").filter((p) => p && p !== ".");
  if (parts.some((p) => p === "..")) throw new AppError("BAD_REQUEST", `The archive entry ${JSON.stringify(name).slice(0, 200)} climbs out of its folder`);
  if (parts.length === 0) return null;
  // macOS resource forks are not part of a dataset.
  if (parts[0] === "__MACOSX" || parts.at(-1)!.startsWith("._")) return null;
  return parts.join("/");
}

/** Counts bytes through a stream and fails once they pass the limit. */
function byteLimit(maxBytes: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > maxBytes) return done(new ArchiveTooLargeError(maxBytes));
      done(null, chunk);
    },
  });
}

/** Unpacks a gzip'd tar stream into `dir`. */
export async function extractTarGz(body: Readable, dir: string, maxBytes: number): Promise<void> {
  const extract = tar.extract();
  let unpacked = 0;
  let entries = 0;
  extract.on("entry", (header, stream, next) => {
    // The entry stream is torn down with the extractor: its error is the extractor's.
    stream.on("error", () => {});
    const fail = (error: Error) => {
      stream.resume();
      extract.destroy(error);
    };
    try {
      if (++entries > MAX_ENTRIES) throw new AppError("BAD_REQUEST", `The archive has more than ${MAX_ENTRIES} entries`);
      const rel = safeEntryPath(header.name);
      if (header.type === "directory" || rel === null) {
        if (rel) fs.mkdirSync(resolveInside(dir, rel), { recursive: true });
        stream.resume();
        stream.on("end", () => next());
        return;
      }
      if (header.type !== "file" && header.type !== "contiguous-file") throw new AppError("BAD_REQUEST", `The archive entry ${rel} is a ${header.type}; only files and folders are accepted`);
      unpacked += header.size ?? 0;
      if (unpacked > maxBytes) throw new ArchiveTooLargeError(maxBytes);
      const target = resolveInside(dir, rel);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      pipeline(stream, fs.createWriteStream(target, { flags: "wx" })).then(() => next(), fail);
    } catch (error) {
      fail(error as Error);
    }
  });
  try {
    await pipeline(body, byteLimit(maxBytes), zlib.createGunzip(), extract);
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw new AppError("BAD_REQUEST", `The archive could not be unpacked: ${(error as Error).message}`);
  }
}

/**
 * Unpacks a .zip file into `dir`, from its central directory (stored and deflated entries;
 * ZIP64 is not read).
 */
export async function extractZip(file: string, dir: string, maxBytes: number): Promise<void> {
  try {
    await unpackZip(file, dir, maxBytes);
  } catch (error) {
    if (error instanceof AppError) throw error;
    // Entries that clash (a file and a folder of one name, a file twice), or numbers that point
    // outside the file the checks below did not foresee: the archive's fault, not the portal's.
    const code = (error as NodeJS.ErrnoException).code;
    if (error instanceof RangeError || code === "ENOTDIR" || code === "EEXIST" || code === "EISDIR") {
      throw new AppError("BAD_REQUEST", `The zip archive is damaged or holds entries that clash (${(error as Error).message}); make it again, or send a .tar.gz`);
    }
    throw error;
  }
}

async function unpackZip(file: string, dir: string, maxBytes: number): Promise<void> {
  const damaged = (what: string) => new AppError("BAD_REQUEST", `The zip's ${what} is damaged; make the archive again, or send a .tar.gz`);
  const handle = await fsp.open(file, "r");
  try {
    const { size } = await handle.stat();
    const tailLength = Math.min(size, 65_557);
    const tail = Buffer.alloc(tailLength);
    await handle.read(tail, 0, tailLength, size - tailLength);
    const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    if (eocd < 0) throw new AppError("BAD_REQUEST", "This is not a zip archive (no end of central directory)");
    if (eocd + 22 > tail.length) throw damaged("end of central directory");
    const count = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    if (count === 0xffff || cdOffset === 0xffffffff) throw new AppError("BAD_REQUEST", "ZIP64 archives are not supported; send a .tar.gz instead");
    if (count > MAX_ENTRIES) throw new AppError("BAD_REQUEST", `The archive has more than ${MAX_ENTRIES} entries`);
    if (cdOffset + cdSize > size) throw damaged("central directory");
    const cd = Buffer.alloc(cdSize);
    await handle.read(cd, 0, cdSize, cdOffset);
    let p = 0;
    let unpacked = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) throw damaged("central directory");
      const method = cd.readUInt16LE(p + 10);
      const compressed = cd.readUInt32LE(p + 20);
      const uncompressed = cd.readUInt32LE(p + 24);
      const nameLength = cd.readUInt16LE(p + 28);
      const extraLength = cd.readUInt16LE(p + 30);
      const commentLength = cd.readUInt16LE(p + 32);
      const externalAttrs = cd.readUInt32LE(p + 38);
      const localOffset = cd.readUInt32LE(p + 42);
      if (p + 46 + nameLength > cd.length) throw damaged("central directory");
      const name = cd.toString("utf8", p + 46, p + 46 + nameLength);
      p += 46 + nameLength + extraLength + commentLength;
      const rel = safeEntryPath(name);
      if (rel === null) continue;
      if (name.endsWith("/")) {
        await fsp.mkdir(resolveInside(dir, rel), { recursive: true });
        continue;
      }
      const unixType = (externalAttrs >>> 16) & 0o170000;
      if (unixType && unixType !== 0o100000) throw new AppError("BAD_REQUEST", `The archive entry ${rel} is a link or a device; only files and folders are accepted`);
      if (method !== 0 && method !== 8) throw new AppError("BAD_REQUEST", `The archive entry ${rel} uses compression method ${method}; only stored and deflated entries are read`);
      unpacked += uncompressed;
      if (unpacked > maxBytes) throw new ArchiveTooLargeError(maxBytes);
      const local = Buffer.alloc(30);
      await handle.read(local, 0, 30, localOffset);
      if (local.readUInt32LE(0) !== 0x04034b50) throw new AppError("BAD_REQUEST", `The zip entry ${rel} is damaged`);
      const dataStart = localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      if (dataStart + compressed > size) throw new AppError("BAD_REQUEST", `The zip entry ${rel} is damaged: it runs past the end of the archive`);
      const target = resolveInside(dir, rel);
      await fsp.mkdir(path.dirname(target), { recursive: true });
      if (compressed === 0) {
        // An empty file stored as is (a read stream cannot end before it starts).
        await fsp.writeFile(target, "", { flag: "wx" });
        continue;
      }
      const source = fs.createReadStream(file, { start: dataStart, end: dataStart + compressed - 1 });
      const steps: NodeJS.ReadWriteStream[] = method === 8 ? [zlib.createInflateRaw()] : [];
      try {
        await pipeline(source, ...(steps as [NodeJS.ReadWriteStream]), byteLimit(uncompressed), fs.createWriteStream(target, { flags: "wx" }));
      } catch (error) {
        if (error instanceof AppError) throw error;
        throw new AppError("BAD_REQUEST", `The zip entry ${rel} could not be unpacked: ${(error as Error).message}`);
      }
    }
  } finally {
    await handle.close();
  }
}

/** A fresh staging folder for an uploaded archive. */
export async function stagingDir(settings: { DATASETS_DIR: string }): Promise<string> {
  const dir = resolveInside(settings.DATASETS_DIR, ".imports", crypto.randomBytes(8).toString("hex"));
  await fsp.mkdir(dir, { recursive: true });
  return dir;
}

/**
 * Unpacks an uploaded archive (gzip'd tar or zip, told apart by their first bytes) into a
 * staging folder. The caller removes the folder if the import is not started.
 */
export async function unpackUpload(body: Readable, settings: { DATASETS_DIR: string }, maxBytes: number): Promise<string> {
  const dir = await stagingDir(settings);
  try {
    const first = await new Promise<Buffer>((resolve, reject) => {
      const onReadable = () => {
        const chunk = body.read(4) as Buffer | null;
        if (chunk) {
          cleanup();
          body.unshift(chunk);
          resolve(chunk);
        }
      };
      const onEnd = () => {
        cleanup();
        resolve(Buffer.alloc(0));
      };
      const onError = (e: Error) => {
        cleanup();
        reject(e);
      };
      const cleanup = () => {
        body.off("readable", onReadable);
        body.off("end", onEnd);
        body.off("error", onError);
      };
      body.on("readable", onReadable);
      body.on("end", onEnd);
      body.on("error", onError);
    });
    if (first[0] === 0x1f && first[1] === 0x8b) {
      await extractTarGz(body, path.join(dir, "content"), maxBytes);
    } else if (first.subarray(0, 4).equals(Buffer.from([0x50, 0x4b, 0x03, 0x04]))) {
      const zipFile = path.join(dir, "upload.zip");
      await pipeline(body, byteLimit(maxBytes), fs.createWriteStream(zipFile));
      await extractZip(zipFile, path.join(dir, "content"), maxBytes);
      await fsp.rm(zipFile, { force: true });
    } else {
      throw new AppError("BAD_REQUEST", "Send the dataset as a .tar.gz or .zip archive");
    }
    return dir;
  } catch (error) {
    body.resume();
    await fsp.rm(dir, { recursive: true, force: true });
    throw error;
  }
}

export interface BuildSnapshot {
  repoId: string;
  /** A folder holding the build's files, hard-linked: a rebuild meanwhile does not change them. */
  dir: string;
  /** Paths relative to `dir`, with / between folders, sorted. */
  files: string[];
  cleanup(): Promise<void>;
}

/**
 * The dataset's current build, hard-linked into a staging folder, so a rebuild while it is read
 * (which removes the old build) cannot cut the reading short; `cleanup` removes the snapshot.
 */
export async function snapshotBuild(db: Db, { orgId, datasetId, settings, blobs }: { orgId: string; datasetId: string; settings: { DATASETS_DIR: string }; blobs: BlobStore }): Promise<BuildSnapshot> {
  const dataset = await db.dataset.findFirst({ where: { id: datasetId, orgId } });
  if (!dataset) throw new AppError("NOT_FOUND", "No such dataset in this organisation");
  if (!dataset.buildId) throw new AppError("CONFLICT", `${dataset.repoId} has no episodes yet; there is nothing to export`);
  const build = await localBuildDir(blobs, settings, dataset);
  const dir = path.join(await stagingDir(settings), "export");
  const cleanup = () => fsp.rm(path.dirname(dir), { recursive: true, force: true });
  try {
    const files = await listFiles(build);
    for (const rel of files) {
      await fsp.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await fsp.link(path.join(build, rel), path.join(dir, rel));
    }
    return { repoId: dataset.repoId, dir, files, cleanup };
  } catch (error) {
    await cleanup().catch(() => {});
    throw error;
  }
}

/**
 * The dataset's current build as a gzip'd tar stream, its files under <name>/. The build's
 * files are hard-linked into a snapshot first, so a rebuild during the download (which removes
 * the old build) cannot cut it short; the snapshot goes when the stream ends.
 */
export async function exportDataset(db: Db, { orgId, datasetId, settings, blobs, signal }: { orgId: string; datasetId: string; settings: { DATASETS_DIR: string }; blobs: BlobStore; signal?: AbortSignal }): Promise<{ stream: Readable; filename: string }> {
  const { repoId, dir: snapshot, files, cleanup } = await snapshotBuild(db, { orgId, datasetId, settings, blobs });
  const name = repoId.split("/").at(-1)!;
  const pack = tar.pack();
  const output = new PassThrough();
  (async () => {
    for (const rel of files) {
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
      const file = path.join(snapshot, rel);
      const stat = await fsp.stat(file);
      const entry = pack.entry({ name: `${name}/${rel}`, size: stat.size, mode: 0o644, mtime: stat.mtime });
      await pipeline(fs.createReadStream(file), entry);
    }
    pack.finalize();
  })().catch((error: unknown) => pack.destroy(error as Error));
  // The download ends once the snapshot is gone, so nothing of it outlives a finished export.
  pipeline(pack, zlib.createGzip({ level: 1 }), output, { end: false }).then(
    async () => {
      await cleanup().catch(() => {});
      output.end();
    },
    (error: unknown) => {
      output.destroy(error as Error);
      return cleanup();
    },
  );
  return { stream: output, filename: `${name}.tar.gz` };
}
