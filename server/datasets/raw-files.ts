import fsp from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import { Prisma } from "../generated/prisma/client";
import { fetchToFile, putFile } from "../storage/blob-files";
import { storedBlobSchema, type BlobStore } from "../storage/blob-store";
import { resolveInside } from "./datasets.schemas";
import type { RawEpisode } from "./raw-episode";

// A raw episode (the frames or videos and the data file an agent sent) is a handover from the
// web process that took it to the worker that encodes it. With the folder store, the machines
// share BLOB_DIR, and EDGE_UPLOAD_DIR beside it: the worker reads the files where they landed.
// With a bucket, the web process puts each file into it when the episode is registered and
// names them on the episode's row (`Episode.rawFiles`: path under the repo's raw folder →
// sha256 and size), then removes its own copy; the worker, on any machine, fetches what its
// EDGE_UPLOAD_DIR lacks before it encodes, and clears the names once the episode is in the
// dataset (the blobs go with the sweep). So workers need no folder shared with web processes.

const rawPathSchema = z
  .string()
  .regex(/^(images|videos|data)(\/[A-Za-z0-9_.-]+)+$/, "must be a path inside images/, videos/ or data/")
  .refine((p) => !p.split("/").some((part) => part === "." || part === ".."), "must stay inside the raw folder");
export const rawFilesSchema = z.record(rawPathSchema, storedBlobSchema);
export type RawFiles = z.infer<typeof rawFilesSchema>;

/** Files put at once: a bucket is far away, each put is a round trip or more. */
const PARALLEL = 8;

/** Whether raw episodes go through the blob store: only when it is not a folder on this machine's disk. */
export const handsOverRawEpisodes = (blobs: BlobStore | undefined): blobs is BlobStore => blobs !== undefined && !blobs.localPath;

/** Every file of a raw episode, as paths under `root` (its repo's raw folder) with / between folders. */
async function rawEpisodeFiles(root: string, raw: RawEpisode): Promise<string[]> {
  const files = [raw.dataFile];
  for (const c of raw.cameras) {
    if (c.video) files.push(c.video);
    if (c.framesDir) {
      for (const entry of await fsp.readdir(c.framesDir, { withFileTypes: true })) if (entry.isFile()) files.push(path.join(c.framesDir, entry.name));
    }
  }
  return files.map((f) => path.relative(root, f).split(path.sep).join("/")).sort();
}

async function inParallel<T>(items: T[], limit: number, signal: AbortSignal | undefined, each: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      signal?.throwIfAborted();
      await each(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}

/** Puts a raw episode's files into the blob store; returns what to name on its row. */
export async function putRawEpisode(blobs: BlobStore, root: string, raw: RawEpisode, { signal }: { signal?: AbortSignal } = {}): Promise<RawFiles> {
  const rels = await rawEpisodeFiles(root, raw);
  const stored: Array<RawFiles[string]> = new Array(rels.length);
  await inParallel(rels, PARALLEL, signal, async (rel, i) => {
    stored[i] = await putFile(blobs, resolveInside(root, ...rel.split("/")), { signal });
  });
  return Object.fromEntries(rels.map((rel, i) => [rel, stored[i]]));
}

export function rawFilesOf(episode: { rawFiles: unknown }): RawFiles | null {
  if (episode.rawFiles === null || episode.rawFiles === undefined) return null;
  const parsed = rawFilesSchema.safeParse(episode.rawFiles);
  if (!parsed.success) throw new AppError("INTERNAL", "The record of this episode's raw files is damaged; upload the episode again");
  return parsed.data;
}

/**
 * Writes into `root` (this machine's raw folder of the repo) each file named on the episode's
 * row that is missing or of another size, from the blob store; `onFile` counts them.
 */
export async function fetchRawEpisode(
  blobs: BlobStore,
  root: string,
  episode: { number: number; rawFiles: unknown },
  { signal, onFile }: { signal?: AbortSignal; onFile?: (done: number, total: number) => Promise<void> | void } = {},
): Promise<number> {
  const files = rawFilesOf(episode);
  if (!files) return 0;
  const entries = Object.entries(files);
  let done = 0;
  let fetched = 0;
  await inParallel(entries, PARALLEL, signal, async ([rel, blob]) => {
    const file = resolveInside(root, ...rel.split("/"));
    const stat = await fsp.stat(file).catch(() => null);
    if (stat?.size !== blob.bytes) {
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fetchToFile(blobs, blob, file, { what: `${rel} of episode ${episode.number}` });
      fetched++;
    }
    await onFile?.(++done, entries.length);
  });
  return fetched;
}

/** Forgets the raw files named on an episode's row, once it no longer needs them (the sweep takes the blobs). */
export async function forgetRawFiles(db: Db, episodeId: string): Promise<void> {
  await db.episode.updateMany({ where: { id: episodeId, rawFiles: { not: Prisma.DbNull } }, data: { rawFiles: Prisma.DbNull } });
}
