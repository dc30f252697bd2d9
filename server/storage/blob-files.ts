import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { hashFileInto } from "../edge/file-hash";
import { AppError, isAppError } from "../errors";
import { inParallel } from "../process/in-parallel";
import { resolveInside } from "../security/paths";
import type { BlobStore, StoredBlob } from "./blob-store";

// Files on this machine that are kept in the blob store, and copies of blobs kept as files (a
// cache). With the folder store on the same disk, the file and the blob are one file (a hard
// link), so nothing is kept twice. Nothing writes such a file in place: every write goes to a
// temporary name and is renamed over it.

/** Why a hard link may fail where a copy would do: another filesystem, or links not allowed. */
const CANNOT_LINK = ["EXDEV", "EPERM", "ENOTSUP", "EMLINK"];

function tempName(file: string): string {
  return `${file}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
}

/**
 * A path of a file kept in the blob store as part of a tree (a build, a raw episode): / between
 * folders, under one of `folders`, never stepping out with `.` or `..`.
 */
export function treePathSchema(folders: string[]) {
  const names = folders.map((f) => `${f}/`);
  const list = names.length > 1 ? `${names.slice(0, -1).join(", ")} or ${names.at(-1)}` : names[0];
  return z
    .string()
    .regex(new RegExp(`^(${folders.join("|")})(\\/[A-Za-z0-9_.-]+)+$`), `must be a path inside ${list}`)
    .refine((p) => !p.split("/").some((part) => part === "." || part === ".."), "must not step out of its folder");
}

/** Every file under `root`, as paths with / between folders, sorted. */
export async function listFiles(root: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
    const child = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(root, child)));
    else if (entry.isFile()) out.push(child);
  }
  return out.sort();
}

export async function hashFile(file: string): Promise<StoredBlob> {
  const hash = crypto.createHash("sha256");
  const bytes = await hashFileInto(hash, file);
  return { sha256: hash.digest("hex"), bytes };
}

/**
 * Puts a file into the blob store with its digest stated (so a put cut off by a restart
 * resumes, and bytes damaged on the way are refused), then makes the file the store's own
 * copy where the store keeps one on this disk.
 */
export async function putFile(blobs: BlobStore, file: string, { signal }: { signal?: AbortSignal } = {}): Promise<StoredBlob> {
  const digest = await hashFile(file);
  // Content the store holds already is not sent again (it counts as just written, for the sweep).
  const stored = (await blobs.keep(digest.sha256)) ? digest : await blobs.put(fs.createReadStream(file), { expectedSha256: digest.sha256, signal });
  const own = await blobs.localPath?.(stored.sha256);
  if (own && (await fsp.stat(own)).ino !== (await fsp.stat(file)).ino) {
    const temp = tempName(file);
    try {
      await fsp.link(own, temp);
      await fsp.rename(temp, file);
    } catch (error) {
      await fsp.rm(temp, { force: true });
      // The file stays a copy of its own.
      if (!CANNOT_LINK.includes((error as NodeJS.ErrnoException).code ?? "")) throw error;
    }
  }
  return stored;
}

/**
 * Writes a blob to `file` (through a temporary name, replacing what is there), its digest checked
 * on the way. `what` names the file in messages ("the front.mp4 of episode 3"); a blob the store
 * does not hold is NOT_FOUND, said of it.
 */
export async function fetchToFile(blobs: BlobStore, blob: StoredBlob, file: string, { what = path.basename(file) }: { what?: string } = {}): Promise<void> {
  const temp = tempName(file);
  try {
    const own = await blobs.localPath?.(blob.sha256);
    if (own) {
      await fsp.link(own, temp).catch(async (error: NodeJS.ErrnoException) => {
        if (!CANNOT_LINK.includes(error.code ?? "")) throw error;
        await fsp.copyFile(own, temp);
      });
    } else {
      const hash = crypto.createHash("sha256");
      const check = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      });
      const source = await blobs.get(blob.sha256).catch((error: unknown) => {
        if (!isAppError(error) || error.code !== "NOT_FOUND") throw error;
        const subject = what.startsWith("the ") ? `The ${what.slice(4)}` : what;
        throw new AppError("NOT_FOUND", `${subject} is not on this machine and the blob store does not hold it (${blob.sha256.slice(0, 12)}…)`, { cause: error });
      });
      await pipeline(source, check, fs.createWriteStream(temp, { flags: "wx" }));
      const got = hash.digest("hex");
      if (got !== blob.sha256) throw new AppError("INTERNAL", `The blob store returned other bytes for ${what} (sha256 ${got}, not ${blob.sha256})`);
    }
    await fsp.rename(temp, file);
  } catch (error) {
    await fsp.rm(temp, { force: true });
    throw error;
  }
}

/** Puts files under `root` (paths with / between folders) into the blob store, `parallel` at a time; returns each one's blob, in the order given. */
export async function putTree(blobs: BlobStore, root: string, rels: string[], { parallel, signal }: { parallel: number; signal?: AbortSignal }): Promise<Record<string, StoredBlob>> {
  const stored = await inParallel(rels, parallel, signal, (rel, _i, each) => putFile(blobs, path.join(root, ...rel.split("/")), { signal: each }));
  return Object.fromEntries(rels.map((rel, i) => [rel, stored[i]]));
}

/**
 * Writes under `root` each recorded file (path with / between folders → blob) this machine lacks
 * or holds at another size, fetched from the blob store, `parallel` at a time. Paths are checked
 * to stay inside `root` (resolveInside). `what` names a file in messages; `onFile` counts the files looked at.
 * Returns how many were fetched.
 */
export async function fetchMissing(
  blobs: BlobStore,
  root: string,
  files: Array<[string, StoredBlob]>,
  { parallel = 1, signal, what, onFile }: { parallel?: number; signal?: AbortSignal; what: (rel: string) => string; onFile?: (done: number, total: number) => Promise<void> | void },
): Promise<number> {
  let done = 0;
  let fetched = 0;
  await inParallel(files, parallel, signal, async ([rel, blob]) => {
    const file = resolveInside(root, ...rel.split("/"));
    const stat = await fsp.stat(file).catch(() => null);
    if (stat?.size !== blob.bytes) {
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fetchToFile(blobs, blob, file, { what: what(rel) });
      fetched++;
    }
    await onFile?.(++done, files.length);
  });
  return fetched;
}
