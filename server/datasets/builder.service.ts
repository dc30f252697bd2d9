import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import { Prisma } from "../generated/prisma/client";
import { mediaTools } from "../media/ffmpeg";
import { datasetDir, featuresFromJson, featuresToJson } from "./datasets.schemas";
import type { BlobStore } from "../storage/blob-store";
import { buildsDir, previousBuild, storeBuildFiles } from "./build-files";
import { episodeFilesOf, localEpisodeDir } from "./episode-files";
import { readStoredEpisode } from "./episode-store";
import { datasetKeys, flatNames } from "./feature-map";
import { buildLeRobotDataset, type BuildInput } from "./lerobot/build";

// The dataset folder DATASETS_DIR/<repo_id> is a symbolic link to its current build under
// DATASETS_DIR/.store/<dataset id>/builds/. A change (an episode added, deleted, restored, a task
// renamed) writes a complete new build beside the old one and then swaps the link in one
// rename: a reader sees the old dataset or the new one, never half of either. The change and the
// swap happen under the dataset's row lock, in the transaction that records the change, so a
// build that fails leaves the database as it was too.

export interface BuilderEnv {
  DATASETS_DIR: string;
  FFMPEG_PATH?: string;
  FFPROBE_PATH?: string;
}

/** Dataset-level settings a build carries over (joint names, robot type, an import's own feature names). */
interface DatasetMeta {
  robotType: string | null;
  names: BuildInput["names"];
  /** Cameras whose videos the dataset has; null to take them from the episodes (nothing recorded yet). */
  cameras: string[] | null;
  keys: NonNullable<BuildInput["keys"]>;
}

function metaFromFeatures(dataset: { robotType: string | null; features: unknown; featureMap: unknown; missingVideos: string[] }): DatasetMeta {
  const f = featuresFromJson(dataset.features);
  const keys = datasetKeys(dataset);
  // Cameras whose videos no episode has are left out of the files (build.ts says why).
  const present = keys.cameras.filter((c) => !dataset.missingVideos.includes(c.key));
  return {
    robotType: dataset.robotType,
    names: { action: flatNames(f[keys.action]?.names), state: flatNames(f[keys.state]?.names) },
    cameras: present.length || dataset.featureMap ? present.map((c) => c.camera) : null,
    keys: { action: keys.action, state: keys.state, video: Object.fromEntries(keys.cameras.map((c) => [c.camera, c.key])) },
  };
}

const TX_OPTIONS = { maxWait: 10 * 60_000, timeout: 60 * 60_000 };

/**
 * Applies `change` and rebuilds the dataset's folder from its episodes, atomically. Episodes
 * in the dataset are the ready ones not deleted, in the order the recorder numbered them
 * (datasetIndex 0..n-1 follows): an episode whose encoding finished after a later one's still
 * takes its place before it, and a restored episode goes back where it was.
 */
export async function rebuildDataset(db: Db, { datasetId, settings, blobs, change, signal }: { datasetId: string; settings: BuilderEnv; blobs: BlobStore; change?: (tx: Tx) => Promise<void>; signal?: AbortSignal }): Promise<{ buildId: string | null; episodes: number }> {
  return db.$transaction(async (tx) => {
    const [locked] = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "Dataset" WHERE "id" = ${datasetId}::uuid FOR UPDATE`;
    if (!locked) throw new AppError("NOT_FOUND", "The dataset was deleted");
    await change?.(tx);
    const dataset = await tx.dataset.findUniqueOrThrow({ where: { id: datasetId } });
    // An episode missing a camera's video is kept and shown, but a LeRobot dataset needs every
    // camera's video for every episode: it stays out of the files.
    await tx.episode.updateMany({ where: { datasetId, missingVideos: { isEmpty: false }, datasetIndex: { not: null } }, data: { datasetIndex: null } });
    const episodes = await tx.episode.findMany({
      where: { datasetId, status: "ready", deletedAt: null, missingVideos: { isEmpty: true } },
      orderBy: { number: "asc" },
    });
    for (const [i, e] of episodes.entries()) if (e.datasetIndex !== i) await tx.episode.update({ where: { id: e.id }, data: { datasetIndex: i } });
    const link = datasetDir(settings, dataset.orgId, dataset.repoId);
    if (episodes.length === 0) {
      await fs.rm(link, { force: true });
      await removeOtherBuilds(settings, datasetId, null);
      await tx.dataset.update({ where: { id: datasetId }, data: { buildId: null, builtAt: new Date(), buildFiles: Prisma.DbNull, buildManifest: Prisma.DbNull } });
      return { buildId: null, episodes: 0 };
    }
    // Each episode's folder is a cache of its files in the blob store: filled here if this
    // machine lacks it.
    const stored = [];
    for (const e of episodes) {
      const dir = await localEpisodeDir(blobs, settings, e);
      stored.push({ e, dir, stored: await readStoredEpisode(dir) });
    }
    const meta = metaFromFeatures(dataset);
    const fps = dataset.fps ?? stored[0].stored.fps;
    const cameras = meta.cameras ?? [...new Set(stored.flatMap((s) => Object.keys(s.stored.videos)))].sort();
    const buildId = `${new Date().toISOString().replace(/[-:.TZ]/g, "").slice(0, 14)}-${crypto.randomBytes(4).toString("hex")}`;
    const builds = buildsDir(settings, datasetId);
    const outDir = path.join(builds, buildId);
    // The build before, to link what has not changed: from the blob store if this machine lacks it.
    const previous = await previousBuild(blobs, settings, dataset);
    await fs.mkdir(outDir, { recursive: true });
    try {
      const built = await buildLeRobotDataset({
        outDir,
        fps,
        robotType: meta.robotType,
        names: meta.names,
        cameras,
        keys: meta.keys,
        previous: previous ?? undefined,
        episodes: stored.map((s) => ({ task: s.e.task, dir: s.dir, stored: s.stored, files: episodeFilesOf(s.e) })),
        tools: mediaTools(settings),
        signal,
      });
      const manifest = { videos: built.manifest, layout: built.layout };
      await fs.writeFile(path.join(builds, `${buildId}.manifest.json`), JSON.stringify(manifest));
      // Every file of the build into the blob store, for machines that read it and lack it.
      const buildFiles = await storeBuildFiles(blobs, outDir, { previous: previous?.files ? { dir: previous.dir, files: previous.files } : null, signal });
      // The swap: a new link beside the old, renamed over it.
      await fs.mkdir(path.dirname(link), { recursive: true });
      const tempLink = `${link}.${crypto.randomBytes(4).toString("hex")}.link`;
      await fs.symlink(path.relative(path.dirname(link), outDir), tempLink);
      await fs.rename(tempLink, link);
      await tx.dataset.update({ where: { id: datasetId }, data: { buildId, builtAt: new Date(), fps, features: featuresToJson(built.features) as Prisma.InputJsonValue, buildFiles: buildFiles as Prisma.InputJsonValue, buildManifest: manifest as unknown as Prisma.InputJsonValue } });
      // Still under the lock, so no other build is being written; open files stay readable.
      await removeOtherBuilds(settings, datasetId, buildId);
      return { buildId, episodes: episodes.length };
    } catch (error) {
      await fs.rm(outDir, { recursive: true, force: true });
      throw error;
    }
  }, TX_OPTIONS);
}

/** A build another process of this machine is writing from the blob store is left to it for this long. */
const WRITING_GRACE_MS = 60 * 60_000;

/** Removes builds that are no longer linked (the one just replaced, and any a crash left). */
async function removeOtherBuilds(settings: BuilderEnv, datasetId: string, current: string | null): Promise<void> {
  const builds = buildsDir(settings, datasetId);
  const entries = await fs.readdir(builds).catch(() => [] as string[]);
  const keep = current ? [current, `${current}.manifest.json`] : [];
  const isGone = async (name: string) => {
    if (keep.includes(name)) return false;
    // A reader's copy being written (build-files.ts): only once it is clearly abandoned.
    if (name.startsWith(".") && name.endsWith(".tmp")) return ((await fs.stat(path.join(builds, name)).catch(() => null))?.mtimeMs ?? 0) < Date.now() - WRITING_GRACE_MS;
    return true;
  };
  const gone = (await Promise.all(entries.map(async (name) => ((await isGone(name)) ? name : null)))).filter((name): name is string => name !== null);
  await Promise.all(gone.map((name) => fs.rm(path.join(builds, name), { recursive: true, force: true })));
}

/**
 * Adds an encoded episode to its dataset: it takes the next episode_index and the folder is
 * rebuilt. Committing an episode that is already in is a no-op.
 */
export async function commitEpisode(db: Db, { episodeId, settings, blobs, signal }: { episodeId: string; settings: BuilderEnv; blobs: BlobStore; signal?: AbortSignal }): Promise<void> {
  const episode = await db.episode.findUnique({ where: { id: episodeId } });
  if (!episode) throw new AppError("NOT_FOUND", "The episode was deleted while it was encoded");
  await rebuildDataset(db, {
    datasetId: episode.datasetId,
    settings,
    blobs,
    signal,
    change: async (tx) => {
      const current = await tx.episode.findUniqueOrThrow({ where: { id: episodeId } });
      if (current.status === "ready") return;
      const count = await tx.episode.count({ where: { datasetId: episode.datasetId, status: "ready", deletedAt: null } });
      await tx.episode.update({ where: { id: episodeId }, data: { status: "ready", error: null, datasetIndex: count, deletedAt: null } });
      const dataset = await tx.dataset.findUniqueOrThrow({ where: { id: episode.datasetId } });
      if (!dataset.fps && current.fps) await tx.dataset.update({ where: { id: dataset.id }, data: { fps: current.fps } });
    },
  });
}
