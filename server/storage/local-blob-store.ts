import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AppError } from "../errors";
import { formatBytes, parseSha256, resolveRange, sha256Schema, type BlobSource, type BlobStore, type ByteRange, type Leftover, type ListedBlob, type PutOptions, type StoredBlob } from "./blob-store";

// Layout: <root>/sha256/<aa>/<bb>/<digest> for blobs, <root>/tmp/ for writes in progress.
// A write goes to a temp file on the same filesystem while it is hashed, is fsynced, then
// renamed into place, so a reader sees a whole blob or none and a crash leaves only a temp
// file behind. Digests are validated before they reach a path, so none can leave the root.
// A blob's mtime is when it was last written or kept (a writer that finds its content stored
// touches it), which is what the sweep's grace window is measured from.

const isNotFound = (error: unknown) => (error as NodeJS.ErrnoException)?.code === "ENOENT";

export function createLocalBlobStore({ root }: { root: string }): BlobStore {
  const base = path.resolve(root);
  const tmpDir = path.join(base, "tmp");
  const trashDir = path.join(base, "trash");
  const blobPath = (sha256: string) => path.join(base, "sha256", sha256.slice(0, 2), sha256.slice(2, 4), sha256);

  async function put(source: BlobSource, { expectedSha256, maxBytes, signal }: PutOptions = {}): Promise<StoredBlob> {
    const expected = expectedSha256 === undefined ? undefined : parseSha256(expectedSha256, "expected sha256");
    signal?.throwIfAborted();
    await fsp.mkdir(tmpDir, { recursive: true });
    const tmpPath = path.join(tmpDir, `${crypto.randomUUID()}.part`);
    const hash = crypto.createHash("sha256");
    let bytes = 0;
    const measure = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        if (maxBytes !== undefined && bytes > maxBytes) {
          done(new AppError("BAD_REQUEST", `The upload is larger than the ${formatBytes(maxBytes)} allowed; nothing was stored`));
          return;
        }
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(source, measure, fs.createWriteStream(tmpPath, { flags: "wx", flush: true }), ...(signal ? [{ signal }] : []));
      const sha256 = hash.digest("hex");
      if (expected && sha256 !== expected) {
        throw new AppError("BAD_REQUEST", `The upload's sha256 is ${sha256}, not the ${expected} it was sent with; it was damaged on the way, so nothing was stored — send it again`);
      }
      const finalPath = blobPath(sha256);
      if (await touch(finalPath)) {
        await fsp.rm(tmpPath, { force: true });
        return { sha256, bytes };
      }
      await fsp.mkdir(path.dirname(finalPath), { recursive: true });
      // Two writers of the same content may both get here; rename replaces atomically with
      // identical bytes, and readers holding the old file keep reading it.
      await fsp.rename(tmpPath, finalPath);
      await syncDir(path.dirname(finalPath));
      return { sha256, bytes };
    } catch (error) {
      await fsp.rm(tmpPath, { force: true });
      if (signal?.aborted) throw signal.reason;
      throw error;
    }
  }

  async function stat(sha256: string): Promise<{ bytes: number } | null> {
    try {
      const s = await fsp.stat(blobPath(parseSha256(sha256)));
      return { bytes: s.size };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async function get(sha256: string, range?: ByteRange): Promise<Readable> {
    const digest = parseSha256(sha256);
    let handle: fsp.FileHandle;
    try {
      // Open first, then size the open file: a delete in between cannot cut the read short.
      handle = await fsp.open(blobPath(digest), "r");
    } catch (error) {
      if (isNotFound(error)) throw new AppError("NOT_FOUND", `The blob store has no blob ${digest}; it was never stored or has been deleted`);
      throw error;
    }
    try {
      const { size } = await handle.stat();
      const resolved = resolveRange(range, size);
      if (!resolved) {
        await handle.close();
        return Readable.from([]);
      }
      return handle.createReadStream({ start: resolved.start, end: resolved.end, autoClose: true });
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async function remove(sha256: string): Promise<void> {
    await fsp.rm(blobPath(parseSha256(sha256)), { force: true });
  }

  async function* list(): AsyncIterable<ListedBlob> {
    const top = path.join(base, "sha256");
    for (const aa of await names(top)) {
      for (const bb of await names(path.join(top, aa))) {
        for (const name of await names(path.join(top, aa, bb))) {
          if (!sha256Schema.safeParse(name).success || name.slice(0, 2) !== aa || name.slice(2, 4) !== bb) continue;
          const s = await fsp.stat(path.join(top, aa, bb, name)).catch((error) => (isNotFound(error) ? null : Promise.reject(error)));
          if (s?.isFile()) yield { sha256: name, bytes: s.size, modifiedAt: s.mtime };
        }
      }
    }
  }

  // Moved aside first, then judged by its mtime: a writer that touched it before the move is
  // seen (and the blob put back); one that looks after the move finds nothing and writes it anew.
  async function deleteIfIdleSince(sha256: string, before: Date): Promise<boolean> {
    const finalPath = blobPath(parseSha256(sha256));
    await fsp.mkdir(trashDir, { recursive: true });
    const aside = path.join(trashDir, `${sha256}.${crypto.randomUUID()}`);
    try {
      await fsp.rename(finalPath, aside);
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
    const s = await fsp.stat(aside);
    if (s.mtime >= before) {
      await fsp.link(aside, finalPath).catch((error) => {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      });
      await fsp.rm(aside, { force: true });
      return false;
    }
    await fsp.rm(aside, { force: true });
    return true;
  }

  async function* listLeftovers(before: Date): AsyncIterable<Leftover> {
    for (const dir of [tmpDir, trashDir]) {
      for (const name of await names(dir)) {
        const file = path.join(dir, name);
        const s = await fsp.stat(file).catch((error) => (isNotFound(error) ? null : Promise.reject(error)));
        if (s?.isFile() && s.mtime < before) yield { name: path.relative(base, file), what: "temporary file", bytes: s.size, modifiedAt: s.mtime };
      }
    }
  }

  async function removeLeftover(leftover: Leftover): Promise<void> {
    const file = path.resolve(base, leftover.name);
    if (![tmpDir, trashDir].includes(path.dirname(file))) throw new AppError("BAD_REQUEST", `${leftover.name} is not a temporary file of the blob store`);
    await fsp.rm(file, { force: true });
  }

  return {
    put,
    stat,
    get,
    has: async (sha256) => (await stat(sha256)) !== null,
    keep: (sha256) => touch(blobPath(parseSha256(sha256))),
    delete: remove,
    list,
    deleteIfIdleSince,
    listLeftovers,
    removeLeftover,
    localPath: async (sha256) => {
      const file = blobPath(parseSha256(sha256));
      return (await stat(sha256)) ? file : null;
    },
  };
}

/** Marks a stored file as just written (for the sweep's grace window); false when it is absent. */
async function touch(file: string): Promise<boolean> {
  const now = new Date();
  try {
    await fsp.utimes(file, now, now);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

async function names(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (error) {
    if (isNotFound(error)) return [];
    throw error;
  }
}

/** Makes a rename durable: the new directory entry survives a power cut. */
async function syncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
