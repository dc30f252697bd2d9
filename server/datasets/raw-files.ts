import fsp from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import { Prisma } from "../generated/prisma/client";
import { fetchMissing, putTree, treePathSchema } from "../storage/blob-files";
import { storedBlobSchema, type BlobStore } from "../storage/blob-store";
import crypto from "node:crypto";
import { datasetStoreDir } from "./datasets.schemas";
import { FRAME_NAME, type RawEpisode } from "./raw-episode";

// A raw episode (the frames or videos and the data file an agent sent) is a handover from the
// web process that took it to the worker that encodes it. With the folder store, the machines
// share BLOB_DIR, and EDGE_UPLOAD_DIR beside it: the worker reads the files where they landed.
// With a bucket, the web process puts each file into it when the episode is registered and
// names them on the episode's row (`Episode.rawFiles`: path under the repo's raw folder →
// sha256 and size), then removes its own copy; the worker, on any machine, fetches them into a
// folder of its own machine's (never EDGE_UPLOAD_DIR, which a web process beside it may be
// clearing): DATASETS_DIR/.store/<dataset id>/raw/<episode id>/<registration>, named by the
// record, so an episode uploaded again is never read from an earlier upload's files. The worker
// clears the names once the episode is in the dataset (the blobs go with the sweep) and removes
// its folder. So workers need no folder shared with web processes.

export const rawFilesSchema = z.record(treePathSchema(["images", "videos", "data"]), storedBlobSchema);
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
      // Frames only: not a `.part` of an upload still arriving, nor what else a client left there.
      for (const entry of await fsp.readdir(c.framesDir, { withFileTypes: true })) if (entry.isFile() && FRAME_NAME.test(entry.name)) files.push(path.join(c.framesDir, entry.name));
    }
  }
  return files.map((f) => path.relative(root, f).split(path.sep).join("/")).sort();
}

/** Puts a raw episode's files into the blob store; returns what to name on its row. */
export async function putRawEpisode(blobs: BlobStore, root: string, raw: RawEpisode, { signal }: { signal?: AbortSignal } = {}): Promise<RawFiles> {
  return putTree(blobs, root, await rawEpisodeFiles(root, raw), { parallel: PARALLEL, signal });
}

export function rawFilesOf(episode: { rawFiles: unknown }): RawFiles | null {
  if (episode.rawFiles === null || episode.rawFiles === undefined) return null;
  const parsed = rawFilesSchema.safeParse(episode.rawFiles);
  if (!parsed.success) throw new AppError("INTERNAL", "The record of this episode's raw files is damaged; upload the episode again");
  return parsed.data;
}

/** The worker's folder for an episode's raw files: DATASETS_DIR/.store/<dataset id>/raw/<episode id>. */
export function rawCacheDir(settings: { DATASETS_DIR: string }, episode: { id: string; datasetId: string }): string {
  return path.join(datasetStoreDir(settings, episode.datasetId), "raw", z.uuid().parse(episode.id));
}

/**
 * The episode's raw files on this machine, in the layout of a repo's raw folder, fetched from the
 * blob store where missing: a folder of this registration's own (named by its record), so files
 * of an earlier upload of the episode are never taken for these; earlier ones are removed.
 * `onFile` counts the files. Returns the folder and how many files were fetched.
 */
export async function fetchRawEpisode(
  blobs: BlobStore,
  settings: { DATASETS_DIR: string },
  episode: { id: string; datasetId: string; number: number; rawFiles: unknown },
  { signal, onFile }: { signal?: AbortSignal; onFile?: (done: number, total: number) => Promise<void> | void } = {},
): Promise<{ root: string; fetched: number }> {
  const files = rawFilesOf(episode);
  if (!files) throw new AppError("INTERNAL", `Episode ${episode.number} has no raw files in the blob store`);
  const entries = Object.entries(files).sort(([a], [b]) => a.localeCompare(b));
  const registration = crypto.createHash("sha256").update(JSON.stringify(entries)).digest("hex").slice(0, 16);
  const base = rawCacheDir(settings, episode);
  for (const name of await fsp.readdir(base).catch(() => [] as string[])) if (name !== registration) await fsp.rm(path.join(base, name), { recursive: true, force: true });
  const root = path.join(base, registration);
  const fetched = await fetchMissing(blobs, root, entries, { parallel: PARALLEL, signal, onFile, what: (rel) => `${rel} of episode ${episode.number}` });
  return { root, fetched };
}

/** Forgets the raw files named on an episode's row once it is in the dataset (the sweep takes the blobs), and this machine's copy. */
export async function forgetRawFiles(db: Db, settings: { DATASETS_DIR: string }, episode: { id: string; datasetId: string }): Promise<void> {
  await db.episode.updateMany({ where: { id: episode.id, rawFiles: { not: Prisma.DbNull } }, data: { rawFiles: Prisma.DbNull } });
  await fsp.rm(rawCacheDir(settings, episode), { recursive: true, force: true });
}
