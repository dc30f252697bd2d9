import fs from "node:fs/promises";
import path from "node:path";
import { recordAudit } from "../audit/audit.service";
import type { OrgActor } from "../auth/roles";
import type { Db } from "../db";
import { AppError } from "../errors";
import { Prisma } from "../generated/prisma/client";
import { importDatasetJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import type { ProgressReporter } from "../jobs/progress";
import { codecOptions, encodeSegment, mediaTools, probeVideo, sampleFramesRgb, type MediaTools } from "../media/ffmpeg";
import type { BlobStore } from "../storage/blob-store";
import { claimUpload, localArchiveContent, removeArchiveUpload } from "./archive-uploads";
import { rebuildDataset } from "./builder.service";
import { featuresToJson, parseRepoId, type FeatureMap, type ImportInspection, type ImportMapping, type StoredFeature } from "./datasets.schemas";
import { deleteDataset, type DeleteDatasetEnv } from "./delete.service";
import type { EncodeEnv } from "./encode.service";
import { storeEpisodeFiles } from "./episode-files";
import { episodeStoreDir, storedVideoPath, tempPath, writeStoredEpisode, type StoredEpisode } from "./episode-store";
import { detectFeatures, extraKeys, flatNames, resolveFeatureMap } from "./feature-map";
import { declaredEpisodes, findDatasetRoot, readSourceEpisodes } from "./lerobot/source";
import { imageStats, sampleIndices } from "./lerobot/stats";

// Imports an existing LeRobot dataset, v3.0 or v2.1 (lerobot/source.ts reads both). Each
// episode becomes an episode of a Gantry dataset with its own rows and videos, and the dataset
// is then written in v3.0's layout like any other, under its own feature names (feature-map.ts).
// Nothing is dropped unsaid: features left out are listed on the dataset, cameras whose videos
// are all missing are recorded as such, and an episode missing a video that others have is
// imported and flagged (and kept out of the dataset's files, which must hold every video they
// declare). A failed import leaves no half-made episodes, and its repo id can be imported again.

export interface ImportSettings extends EncodeEnv, DeleteDatasetEnv {
  datasetImportRoots: string[];
}

/** A folder inside one of the allowed roots (symbolic links resolved first), or a 400. */
export async function resolveImportFolder(settings: { datasetImportRoots: string[] }, folder: string): Promise<string> {
  let real: string;
  try {
    real = await fs.realpath(path.resolve(folder));
  } catch {
    throw new AppError("BAD_REQUEST", `${folder} does not exist on the server`);
  }
  const roots = await Promise.all(settings.datasetImportRoots.map((r) => fs.realpath(r).catch(() => path.resolve(r))));
  if (!roots.some((root) => real === root || real.startsWith(root + path.sep))) {
    throw new AppError("FORBIDDEN", `${folder} is outside the folders datasets may be imported from (DATASET_IMPORT_ROOTS: ${settings.datasetImportRoots.join(", ")})`);
  }
  return real;
}

/** What an import of the dataset under `dir` would take: its features and the mapping proposed. */
export async function inspectDataset(dir: string): Promise<ImportInspection> {
  const { version, info } = await findDatasetRoot(dir);
  const fps = Number(info.fps);
  return {
    version,
    fps: Number.isInteger(fps) && fps > 0 ? fps : null,
    robotType: typeof info.robot_type === "string" ? info.robot_type : null,
    episodes: declaredEpisodes(info),
    ...detectFeatures(sourceFeatures(info)),
  };
}

function sourceFeatures(info: Record<string, unknown>): Record<string, StoredFeature> {
  const features = info.features;
  if (!features || typeof features !== "object" || Array.isArray(features)) throw new AppError("BAD_REQUEST", "meta/info.json has no features: this is not a LeRobot dataset, or its info.json is damaged");
  for (const [key, feature] of Object.entries(features as Record<string, unknown>)) {
    if (!feature || typeof feature !== "object") throw new AppError("BAD_REQUEST", `meta/info.json's feature ${key} is not an object with a dtype and a shape; its info.json is damaged`);
    const { shape } = feature as { shape?: unknown };
    if (shape !== undefined && !(Array.isArray(shape) && shape.every((n) => Number.isInteger(n) && n >= 0))) {
      throw new AppError("BAD_REQUEST", `meta/info.json's feature ${key} has the shape ${JSON.stringify(shape)}; a shape is a list of whole numbers`);
    }
  }
  return features as Record<string, StoredFeature>;
}

/** Checks a mapping (or the proposal) against the dataset before anything is created: a 400 names the features found. */
export async function checkImportMapping(dir: string, mapping: ImportMapping | null | undefined): Promise<FeatureMap> {
  const { info } = await findDatasetRoot(dir);
  return resolveFeatureMap(sourceFeatures(info), mapping);
}

/** What an import from a server folder would take, for the person to confirm. */
export async function inspectImportFolder({ input, settings }: { input: { path: string }; settings: { datasetImportRoots: string[] } }): Promise<ImportInspection> {
  return inspectDataset(await resolveImportFolder(settings, input.path));
}

/** Starts an import from a folder on the server. */
export async function importDatasetFromFolder(db: Db, { actor, input, settings }: { actor: OrgActor; input: { path: string; repoId: string; mapping?: ImportMapping }; settings: ImportSettings }): Promise<{ datasetId: string; jobId: string }> {
  const folder = await resolveImportFolder(settings, input.path);
  const { root } = await findDatasetRoot(folder);
  await checkImportMapping(root, input.mapping);
  return startImport(db, { actor, repoId: input.repoId, sourceDir: root, removeSource: false, from: input.path, mapping: input.mapping, settings });
}

type ImportJobRow = { status: string; error: string | null };

/** A dataset's latest import job (null when it was not imported). */
export async function latestImportJob(db: Db, datasetId: string): Promise<(ImportJobRow & { id: string; progress: number; step: string | null }) | null> {
  return db.job.findFirst({ where: { kind: importDatasetJob.name, payload: { path: ["datasetId"], equals: datasetId } }, orderBy: { createdAt: "desc" }, select: { id: true, status: true, progress: true, step: true, error: true } });
}

const hasFailed = (job: ImportJobRow | null) => job !== null && (job.status === "failed" || job.status === "cancelled");

/**
 * Refuses a repo id the organisation already uses, before an upload is read. A dataset whose
 * import failed and that holds no episode does not keep its name: a new import replaces it.
 */
export async function checkRepoIdFree(db: Db, { orgId, repoId }: { orgId: string; repoId: string }): Promise<{ replaces: string | null }> {
  const id = parseRepoId(repoId);
  const existing = await db.dataset.findFirst({ where: { orgId, repoId: id }, select: { id: true, source: true, _count: { select: { episodes: { where: { status: "ready" } } } } } });
  if (!existing) return { replaces: null };
  if (existing.source === "import" && existing._count.episodes === 0 && hasFailed(await latestImportJob(db, existing.id))) return { replaces: existing.id };
  throw new AppError("CONFLICT", `Your organisation already has a dataset named ${id}; choose another repo id`);
}

/** Creates the dataset and queues its import, in one transaction (replacing a failed import of the same name first). */
export async function startImport(
  db: Db,
  {
    actor,
    repoId,
    sourceDir,
    archiveId,
    removeSource,
    from,
    mapping,
    settings,
  }: {
    actor: OrgActor;
    repoId: string;
    sourceDir: string;
    /** An uploaded archive kept in the blob store (archive-uploads.ts): the import takes it over. */
    archiveId?: string;
    removeSource: boolean;
    from: string;
    mapping?: ImportMapping;
    settings: DeleteDatasetEnv;
  },
): Promise<{ datasetId: string; jobId: string }> {
  const id = parseRepoId(repoId);
  const { replaces } = await checkRepoIdFree(db, { orgId: actor.orgId, repoId: id });
  // Only an operator's right is needed: what goes is a failed import with nothing in it.
  if (replaces) await deleteDataset(db, { actor, datasetId: replaces, settings, minRole: "operator" });
  try {
    return await db.$transaction(async (tx) => {
      const dataset = await tx.dataset.create({ data: { orgId: actor.orgId, repoId: id, source: "import", createdById: actor.userId } });
      if (archiveId) await claimUpload(tx, { id: archiveId, datasetId: dataset.id });
      const { jobId } = await enqueue(importDatasetJob, { datasetId: dataset.id, sourceDir, ...(archiveId ? { archiveId } : {}), removeSource, ...(mapping ? { mapping } : {}) }, { tx, orgId: actor.orgId, createdById: actor.userId });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "dataset.import", target: dataset.id, data: { repoId: id, from, ...(mapping ? { mapping } : {}), ...(replaces ? { replaces } : {}) } });
      return { datasetId: dataset.id, jobId };
    });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new AppError("CONFLICT", `Your organisation already has a dataset named ${id}; choose another repo id`);
    throw error;
  }
}

export interface ImportJobInput {
  datasetId: string;
  /** The source folder on the machine that asked for the import. */
  sourceDir: string;
  /** An uploaded archive in the blob store: read from this machine's copy of it instead, written from the store when need be. */
  archiveId?: string;
  removeSource: boolean;
  /** The person's mapping; the proposal when left out. */
  mapping?: ImportMapping;
  settings: ImportSettings;
  /** Where the episodes' files are kept (their folders are a cache). */
  blobs: BlobStore;
  progress: ProgressReporter;
  signal?: AbortSignal;
}

export interface ImportResult {
  episodes: number;
  /** Cameras with no video in any episode. */
  missingVideos: string[];
  /** Episode numbers missing a video that other episodes have: imported, flagged, kept out of the files. */
  episodesWithoutVideo: number[];
}

const list = (items: Array<string | number>) => (items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`);

/** The import job: reads the source, stores each episode, writes the v3.0 dataset. Safe to run again. */
export async function runImport(db: Db, { datasetId, sourceDir: askedDir, archiveId, removeSource, mapping, settings, blobs, progress, signal }: ImportJobInput): Promise<ImportResult> {
  const dataset = await db.dataset.findUnique({ where: { id: datasetId } });
  if (!dataset) throw new AppError("NOT_FOUND", "The dataset was deleted before it was imported");
  // An earlier run finished the import (its last transaction names the version) and was stopped
  // before the job said so: what it imported stands, and its source is let go.
  if (dataset.importedVersion) {
    if (archiveId) await removeArchiveUpload(db, settings, archiveId);
    else if (removeSource) await fs.rm(askedDir, { recursive: true, force: true });
    const episodes = await db.episode.findMany({ where: { datasetId }, select: { number: true, missingVideos: true } });
    const byKey = new Map(((dataset.featureMap as { cameras?: { camera: string; key: string }[] } | null)?.cameras ?? []).map((c) => [c.key, c.camera]));
    return { episodes: episodes.length, missingVideos: dataset.missingVideos.map((key) => byKey.get(key) ?? key), episodesWithoutVideo: episodes.filter((e) => e.missingVideos.length).map((e) => e.number).sort((a, b) => a - b) };
  }
  let sourceDir = askedDir;
  if (archiveId) {
    const upload = await db.archiveUpload.findFirst({ where: { id: archiveId, datasetId } });
    if (!upload) throw new AppError("NOT_FOUND", "The uploaded archive is no longer kept (its import finished, or the dataset was deleted); upload it again");
    await progress.step("Fetching the uploaded archive", 0.01);
    sourceDir = await localArchiveContent(blobs, settings, upload, {
      onFile: async (done, total) => {
        signal?.throwIfAborted();
        if (done === total || done % 50 === 0) await progress.set(0.01 + 0.01 * (done / total), `Fetching the uploaded archive: ${done} of ${total} files`);
      },
    });
  }
  await progress.step("Reading the dataset", 0.02);
  const { root, version, info } = await findDatasetRoot(sourceDir);
  const features = sourceFeatures(info);
  const map = resolveFeatureMap(features, mapping);
  const fps = Number(info.fps);
  if (!Number.isInteger(fps) || fps < 1 || fps > 1000) throw new AppError("BAD_REQUEST", `meta/info.json has no valid fps (${JSON.stringify(info.fps ?? null)}): a dataset's fps is a whole number from 1 to 1000`);
  await progress.log(`Action ${map.action}, state ${map.state}, cameras ${map.cameras.map((c) => c.key).join(", ") || "none"}`);
  if (map.dropped.length) await progress.log(`Left out: ${map.dropped.map((d) => `${d.key} (${d.reason})`).join("; ")}`, "warn");
  const cameras = map.cameras.map((c) => c.camera);

  const source = await readSourceEpisodes(root, version, info, map, extraKeys(features, map));
  if (!source.length) throw new AppError("BAD_REQUEST", "The dataset has no episodes");
  const missing = cameras.filter((c) => source.every((e) => !e.videos[c]));
  const present = cameras.filter((c) => !missing.includes(c));
  const tools = present.length ? mediaTools(settings) : null;
  const episodeStore = path.join(settings.DATASETS_DIR, ".store", datasetId, "episodes");

  // A run after a crash starts over: the episodes of an earlier attempt go first.
  const clear = async () => {
    await db.episode.deleteMany({ where: { datasetId } });
    await fs.rm(episodeStore, { recursive: true, force: true });
  };
  await clear();
  const created: string[] = [];
  const withoutVideo: number[] = [];
  try {
    for (const [i, e] of source.entries()) {
      if (signal?.aborted) throw signal.reason ?? new Error("Cancelled");
      // A step per episode, so the job and the dataset page say which one it is on.
      await progress.step(`Importing episode ${i + 1} of ${source.length} (${e.length} frames)`, 0.05 + 0.85 * (i / source.length));
      const lacking = present.filter((c) => !e.videos[c]);
      if (lacking.length) withoutVideo.push(e.index);
      const episode = await db.episode.create({
        data: { orgId: dataset.orgId, datasetId, number: e.index, status: "encoding", mode: "import", task: e.task, fps, length: e.length, cameras: present.filter((c) => !lacking.includes(c)), missingVideos: lacking, datasetIndex: null },
      });
      created.push(episode.id);
      const dir = episodeStoreDir(settings, datasetId, episode.id);
      await fs.mkdir(dir, { recursive: true });
      const videos: StoredEpisode["videos"] = {};
      const stats: NonNullable<StoredEpisode["imageStats"]> = {};
      for (const camera of present) {
        const v = e.videos[camera];
        if (!v || !tools) continue;
        const target = storedVideoPath(dir, camera);
        await copyEpisodeVideo(tools, settings, v, e.length, fps, target, version, signal);
        const probe = await probeVideo(tools, target);
        if (probe.frames !== e.length) throw new AppError("BAD_REQUEST", `Episode ${e.index}'s ${camera} video has ${probe.frames} frames, the data ${e.length}`);
        videos[camera] = probe;
        const sampled = await sampleFramesRgb(tools, target, { width: probe.width, height: probe.height, indices: sampleIndices(e.length) });
        stats[camera] = imageStats(sampled.pixels, sampled.frames);
      }
      await writeStoredEpisode(dir, { fps, rows: e.rows, videos, imageStats: stats });
      await storeEpisodeFiles(db, blobs, { episodeId: episode.id, dir, signal });
    }
    if (withoutVideo.length) await progress.log(`Episode${withoutVideo.length === 1 ? "" : "s"} ${list(withoutVideo)} ha${withoutVideo.length === 1 ? "s" : "ve"} no video for a camera the others have: imported and flagged, and kept out of the dataset's files`, "warn");

    await progress.step("Writing the dataset", 0.92);
    const kept: Record<string, unknown> = { [map.action]: { ...features[map.action], names: flatNames(features[map.action].names) }, [map.state]: { ...features[map.state], names: flatNames(features[map.state].names) } };
    await rebuildDataset(db, {
      datasetId,
      settings,
      blobs,
      signal,
      change: async (tx) => {
        await tx.dataset.update({
          where: { id: datasetId },
          data: {
            fps,
            robotType: typeof info.robot_type === "string" ? info.robot_type : null,
            importedVersion: version,
            missingVideos: map.cameras.filter((c) => missing.includes(c.camera)).map((c) => c.key),
            featureMap: map as Prisma.InputJsonValue,
            features: featuresToJson(kept) as Prisma.InputJsonValue,
          },
        });
        await tx.episode.updateMany({ where: { id: { in: created } }, data: { status: "ready" } });
      },
    });
  } catch (error) {
    // Nothing half-imported stays behind: the dataset shows the import failed, with no episodes.
    await clear().catch(() => {});
    throw error;
  }
  if (missing.length) await progress.log(`The dataset has no videos for ${list(map.cameras.filter((c) => missing.includes(c.camera)).map((c) => c.key))}: its joints are imported, its videos are missing`, "warn");
  if (archiveId) {
    await removeArchiveUpload(db, settings, archiveId);
  } else if (removeSource) {
    await fs.rm(sourceDir, { recursive: true, force: true });
    await fs.rmdir(path.dirname(sourceDir)).catch(() => {}); // the upload's staging folder, when empty
  }
  return { episodes: source.length, missingVideos: missing, episodesWithoutVideo: withoutVideo };
}

/**
 * An episode's own MP4: v2.1 already has one per episode (copied as is); v3.0 concatenates
 * episodes, so the episode's frames are cut out and re-encoded with Gantry's settings.
 */
async function copyEpisodeVideo(tools: MediaTools, settings: EncodeEnv, v: { file: string; from: number }, frames: number, fps: number, target: string, version: string, signal?: AbortSignal): Promise<void> {
  const temp = tempPath(target);
  try {
    if (version === "v2.1") {
      await fs.copyFile(v.file, temp);
    } else {
      const { options } = await codecOptions(tools, { codec: settings.EDGE_ENCODE_CODEC, preset: settings.EDGE_ENCODE_PRESET, crf: settings.EDGE_ENCODE_CRF });
      await encodeSegment({ tools, input: v.file, fromS: v.from, frames, fps, output: temp, options, signal });
    }
    await fs.rename(temp, target);
  } finally {
    await fs.rm(temp, { force: true });
  }
}
