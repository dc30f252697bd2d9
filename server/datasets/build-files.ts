import crypto from "node:crypto";
import fsp from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import { Prisma } from "../generated/prisma/client";
import { fetchMissing, listFiles, putFile, treePathSchema } from "../storage/blob-files";
import { storedBlobSchema, type BlobStore } from "../storage/blob-store";
import { datasetDir, datasetStoreDir } from "./datasets.schemas";
import type { BuildLayout, PreviousBuild } from "./lerobot/build";

// A dataset's build (its LeRobot v3.0 tree) is kept in the blob store as well: each file a blob,
// named on the dataset's row (`Dataset.buildFiles`: path → sha256 and size) beside the builder's
// manifest (`Dataset.buildManifest`). The build's folder, DATASETS_DIR/.store/<id>/builds/<build>,
// is a cache on each machine: one that reads the dataset (to score it, train on it, export it)
// and lacks the current build writes it from the store first and points the dataset's folder
// at it. Files a build shares with the one before (a video of unchanged episodes) are the same
// blob, stored once.

export const buildFilesSchema = z.record(treePathSchema(["meta", "data", "videos"]), storedBlobSchema);
export type BuildFiles = z.infer<typeof buildFilesSchema>;

const manifestSchema = z.object({ videos: z.record(z.string(), z.string()), layout: z.custom<BuildLayout>((v) => typeof v === "object" && v !== null).optional() });
export type BuildManifest = z.infer<typeof manifestSchema>;

/** What a dataset row says of its build. */
export interface DatasetBuildRow {
  id: string;
  orgId: string;
  repoId: string;
  buildId: string | null;
  buildFiles: unknown;
  buildManifest: unknown;
}

export function buildFilesOf(dataset: { buildFiles: unknown }): BuildFiles | null {
  const parsed = buildFilesSchema.safeParse(dataset.buildFiles);
  return dataset.buildFiles != null && parsed.success ? parsed.data : null;
}

export function buildsDir(settings: { DATASETS_DIR: string }, datasetId: string): string {
  return path.join(datasetStoreDir(settings, datasetId), "builds");
}

/**
 * Puts the files of the build in `dir` into the blob store. A file that is the previous build's
 * (the same file, linked) keeps that build's record without being read again.
 */
export async function storeBuildFiles(blobs: BlobStore, dir: string, { previous, signal }: { previous?: { dir: string; files: BuildFiles } | null; signal?: AbortSignal } = {}): Promise<BuildFiles> {
  const files: BuildFiles = {};
  for (const rel of await listFiles(dir)) {
    signal?.throwIfAborted();
    const file = path.join(dir, rel);
    const earlier = previous?.files[rel];
    if (earlier) {
      const [now, before] = await Promise.all([fsp.stat(file), fsp.stat(path.join(previous.dir, rel)).catch(() => null)]);
      if (before && now.ino === before.ino && now.dev === before.dev && now.size === earlier.bytes && (await blobs.keep(earlier.sha256))) {
        files[rel] = earlier;
        continue;
      }
    }
    files[rel] = await putFile(blobs, file, { signal });
  }
  return files;
}

/** The builder's manifest of a build, from this machine's copy or else from the dataset's row. */
export async function readBuildManifest(settings: { DATASETS_DIR: string }, dataset: DatasetBuildRow): Promise<BuildManifest | null> {
  if (!dataset.buildId) return null;
  const file = path.join(buildsDir(settings, dataset.id), `${dataset.buildId}.manifest.json`);
  const text = await fsp.readFile(file, "utf8").catch(() => null);
  const raw = text === null ? dataset.buildManifest : JSON.parse(text);
  const parsed = manifestSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  // Builds made before layouts were kept wrote the bare video map.
  const bare = z.record(z.string(), z.string()).safeParse(raw);
  return bare.success ? { videos: bare.data } : null;
}

/** The previous build for the builder: on this machine (written from the store if need be), or null to pack afresh. */
export async function previousBuild(blobs: BlobStore, settings: { DATASETS_DIR: string }, dataset: DatasetBuildRow): Promise<(PreviousBuild & { files: BuildFiles | null }) | null> {
  if (!dataset.buildId) return null;
  const dir = await writeBuild(blobs, settings, dataset).catch(() => null);
  const manifest = dir ? await readBuildManifest(settings, dataset) : null;
  return dir && manifest ? { dir, manifest: manifest.videos, layout: manifest.layout, files: buildFilesOf(dataset) } : null;
}

/** The current build's folder on this machine, written from the blob store when it is not here. */
async function writeBuild(blobs: BlobStore, settings: { DATASETS_DIR: string }, dataset: DatasetBuildRow): Promise<string> {
  const builds = buildsDir(settings, dataset.id);
  const dir = path.join(builds, dataset.buildId!);
  if (await fsp.stat(dir).then((s) => s.isDirectory(), () => false)) return dir;
  const files = buildFilesOf(dataset);
  if (!files) {
    throw new AppError("NOT_FOUND", `The files of ${dataset.repoId} are not on this machine, and its build was made before builds were kept in the blob store; change the dataset once on the machine that built it (delete and restore an episode) to store it`);
  }
  const temp = path.join(builds, `.${dataset.buildId}.${crypto.randomBytes(4).toString("hex")}.tmp`);
  try {
    await fetchMissing(blobs, temp, Object.entries(files), { parallel: 4, what: (rel) => `${rel} of ${dataset.repoId}` });
    if (dataset.buildManifest) await fsp.writeFile(path.join(builds, `${dataset.buildId}.manifest.json`), JSON.stringify(dataset.buildManifest));
    // Another process of this machine may have written it meanwhile: theirs stays.
    await fsp.rename(temp, dir).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
    });
    return dir;
  } finally {
    await fsp.rm(temp, { recursive: true, force: true });
  }
}

/**
 * The dataset's current build on this machine, for a reader: written from the blob store if this
 * machine lacks it, with the dataset's folder (DATASETS_DIR/<org>/<repo id>) pointed at it.
 */
export async function localBuildDir(blobs: BlobStore, settings: { DATASETS_DIR: string }, dataset: DatasetBuildRow): Promise<string> {
  if (!dataset.buildId) throw new AppError("CONFLICT", `${dataset.repoId} has no episodes yet`);
  const dir = await writeBuild(blobs, settings, dataset);
  const link = datasetDir(settings, dataset.orgId, dataset.repoId);
  const target = path.relative(path.dirname(link), dir);
  if ((await fsp.readlink(link).catch(() => null)) !== target) {
    await fsp.mkdir(path.dirname(link), { recursive: true });
    const tempLink = `${link}.${crypto.randomBytes(4).toString("hex")}.link`;
    await fsp.symlink(target, tempLink);
    await fsp.rename(tempLink, link);
  }
  return dir;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Removes this machine's copies (DATASETS_DIR/.store/<id>) of datasets deleted on another
 * machine; returns how many. Only a folder whose dataset has no row and whose deletion the
 * audit log records is removed: a folder this database knows nothing of is not its to remove.
 */
export async function removeCopiesOfDeletedDatasets(db: Db, settings: { DATASETS_DIR: string }): Promise<number> {
  const store = path.join(settings.DATASETS_DIR, ".store");
  const ids = (await fsp.readdir(store).catch(() => [] as string[])).filter((name) => UUID.test(name));
  if (!ids.length) return 0;
  const kept = new Set((await db.dataset.findMany({ where: { id: { in: ids } }, select: { id: true } })).map((d) => d.id));
  const deleted = await db.auditEvent.findMany({ where: { action: "dataset.delete", target: { in: ids.filter((id) => !kept.has(id)) } }, select: { target: true } });
  const gone = [...new Set(deleted.map((e) => e.target!))];
  for (const id of gone) await fsp.rm(path.join(store, id), { recursive: true, force: true });
  return gone.length;
}

/**
 * Stores the builds made before builds were kept in the blob store, from the machine that has
 * them, each under its dataset's lock so a rebuild meanwhile is not overwritten; returns how
 * many it stored.
 */
export async function storeUnstoredBuilds(db: Db, blobs: BlobStore, { settings, limit = 20, signal }: { settings: { DATASETS_DIR: string }; limit?: number; signal?: AbortSignal }): Promise<{ stored: number; elsewhere: number }> {
  const datasets = await db.dataset.findMany({ where: { buildId: { not: null }, buildFiles: { equals: Prisma.DbNull } }, select: { id: true }, orderBy: { createdAt: "asc" } });
  let stored = 0;
  let elsewhere = 0;
  for (const { id } of datasets) {
    if (stored >= limit) break;
    const done = await db.$transaction(
      async (tx) => {
        const [row] = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "Dataset" WHERE "id" = ${id}::uuid FOR UPDATE`;
        const dataset = row && (await tx.dataset.findUnique({ where: { id } }));
        if (!dataset?.buildId || dataset.buildFiles !== null) return false;
        const dir = path.join(buildsDir(settings, id), dataset.buildId);
        if (!(await fsp.stat(dir).catch(() => null))) {
          elsewhere++;
          return false;
        }
        const files = await storeBuildFiles(blobs, dir, { signal });
        const manifest = await readBuildManifest(settings, dataset);
        await tx.dataset.update({ where: { id }, data: { buildFiles: files as Prisma.InputJsonValue, buildManifest: manifest ? (manifest as unknown as Prisma.InputJsonValue) : Prisma.DbNull } });
        return true;
      },
      { maxWait: 60_000, timeout: 60 * 60_000 },
    );
    if (done) stored++;
  }
  return { stored, elsewhere };
}
