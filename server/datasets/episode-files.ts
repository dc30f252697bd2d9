import fsp from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import { Prisma } from "../generated/prisma/client";
import { fetchMissing, putTree } from "../storage/blob-files";
import { storedBlobSchema, type BlobStore } from "../storage/blob-store";
import { episodeStoreDir } from "./episode-store";

// An episode's own files (episode.json and one MP4 per camera) are kept in the blob store,
// named on its row (`Episode.storedFiles`: file name → sha256 and size). The episode's folder
// under DATASETS_DIR/.store is then a cache on the machine that uses it: a worker on another
// machine, or one whose disk was lost, fills it from the store before it builds the dataset,
// and a web process with no copy plays the video straight from the store with ranged reads.

/** The names an episode's folder holds: its rows, and a video per camera. */
const fileNameSchema = z.string().regex(/^(episode\.json|[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\.mp4)$/);
export const episodeFilesSchema = z.record(fileNameSchema, storedBlobSchema);
export type EpisodeFiles = z.infer<typeof episodeFilesSchema>;

/** The files recorded on an episode's row, or null when they are not in the blob store yet. */
export function episodeFilesOf(episode: { storedFiles: unknown }): EpisodeFiles | null {
  if (episode.storedFiles === null || episode.storedFiles === undefined) return null;
  const parsed = episodeFilesSchema.safeParse(episode.storedFiles);
  return parsed.success ? parsed.data : null;
}

/** Puts each of the episode's files in `dir` into the blob store and records them on its row. */
export async function storeEpisodeFiles(db: Db, blobs: BlobStore, { episodeId, dir, signal }: { episodeId: string; dir: string; signal?: AbortSignal }): Promise<EpisodeFiles> {
  const names = (await fsp.readdir(dir)).filter((name) => fileNameSchema.safeParse(name).success).sort();
  if (!names.includes("episode.json")) throw new AppError("INTERNAL", `The episode's folder has no episode.json; it cannot be stored`);
  const files: EpisodeFiles = await putTree(blobs, dir, names, { parallel: 1, signal });
  // A row deleted meanwhile takes nothing with it: the sweep removes the blobs no row names.
  await db.episode.updateMany({ where: { id: episodeId }, data: { storedFiles: files as Prisma.InputJsonValue } });
  return files;
}

/**
 * The episode's folder on this machine, with every recorded file present (or those `only`
 * names): those missing (or of another size) are fetched from the blob store. An episode not
 * stored yet (its files only in the folder of the machine that encoded it) is returned as it is.
 */
export async function localEpisodeDir(blobs: BlobStore, settings: { DATASETS_DIR: string }, episode: { id: string; datasetId: string; number?: number; storedFiles: unknown }, { only }: { only?: string[] } = {}): Promise<string> {
  const dir = episodeStoreDir(settings, episode.datasetId, episode.id);
  const files = episodeFilesOf(episode);
  if (!files) return dir;
  const wanted = Object.entries(files).filter(([name]) => !only || only.includes(name));
  await fetchMissing(blobs, dir, wanted, { what: (name) => `the ${name} of episode ${episode.number ?? episode.id}` });
  return dir;
}

/**
 * Stores the files of episodes encoded before episodes were kept in the blob store (or whose
 * storing a crash cut off), up to `limit` of them; returns how many it stored. Episodes whose
 * folder is not on this machine are left for a worker that has it.
 */
export async function storeUnstoredEpisodes(db: Db, blobs: BlobStore, { settings, limit = 50, signal }: { settings: { DATASETS_DIR: string }; limit?: number; signal?: AbortSignal }): Promise<{ stored: number; elsewhere: number }> {
  const episodes = await db.episode.findMany({ where: { status: "ready", storedFiles: { equals: Prisma.DbNull } }, select: { id: true, datasetId: true }, orderBy: { createdAt: "asc" } });
  let stored = 0;
  let elsewhere = 0;
  for (const e of episodes) {
    if (stored >= limit) break;
    const dir = episodeStoreDir(settings, e.datasetId, e.id);
    if (!(await fsp.stat(path.join(dir, "episode.json")).catch(() => null))) {
      elsewhere++;
      continue;
    }
    await storeEpisodeFiles(db, blobs, { episodeId: e.id, dir, signal });
    stored++;
  }
  return { stored, elsewhere };
}
