import fs from "node:fs/promises";
import { recordAudit } from "../audit/audit.service";
import type { OrgActor } from "../auth/roles";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { Dataset, Episode } from "../generated/prisma/client";
import { encodeEpisodeJob, importDatasetJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import { rebuildDataset, type BuilderEnv } from "./builder.service";
import { featureMapSchema, featuresFromJson, rawEpisodeDir, type DatasetDetail, type DatasetSummary, type EpisodeDetail, type EpisodeSummary } from "./datasets.schemas";
import type { BlobStore } from "../storage/blob-store";
import type { Prisma } from "../generated/prisma/client";
import { episodeFilesOf, localEpisodeDir } from "./episode-files";
import { episodeStoreDir, readStoredEpisode, storedVideoPath } from "./episode-store";
import { datasetKeys } from "./feature-map";
import { effectiveEpisodeStatus } from "./ingest.service";
import { findRawEpisode, removeRawEpisode, type RawEpisode } from "./raw-episode";
import { handsOverRawEpisodes, putRawEpisode, rawFilesOf } from "./raw-files";

// Reading datasets for the pages, and the edits people make: delete and restore an episode,
// rename a task, retry a failed encoding. Every edit that changes the dataset's files goes
// through rebuildDataset, which swaps in a complete new build.

type JobInfo = { status: string; progress: number; error: string | null };

function featureNames(features: unknown, key: string): string[] {
  const f = featuresFromJson(features);
  const names = f[key]?.names;
  return Array.isArray(names) ? names.map(String) : [];
}

/** Every camera the dataset has, videos or not: an import's feature map, else its features, else its episodes'. */
function cameraList(dataset: Dataset, episodes: Pick<Episode, "cameras">[]): string[] {
  const fromFeatures = datasetKeys(dataset).cameras.map((c) => c.camera);
  return fromFeatures.length || dataset.featureMap ? fromFeatures : [...new Set(episodes.flatMap((e) => e.cameras))].sort();
}

type ImportJob = { status: string; error: string | null } | null | undefined;

function importStatus(dataset: Dataset, job: ImportJob): Pick<DatasetSummary, "importStatus" | "importError"> {
  if (dataset.source !== "import") return { importStatus: null, importError: null };
  if (job && (job.status === "failed" || job.status === "cancelled")) return { importStatus: "failed", importError: job.error ?? `The import was ${job.status}` };
  return { importStatus: dataset.importedVersion ? "imported" : "importing", importError: null };
}

/** An episode as lists read it: without its lists of files. */
type EpisodeRow = Omit<Episode, "rawFiles" | "storedFiles">;

function toEpisodeSummary(e: EpisodeRow, job: JobInfo | undefined, fps: number | null): EpisodeSummary {
  const rate = e.fps ?? fps;
  return {
    id: e.id,
    number: e.number,
    datasetIndex: e.deletedAt ? null : e.datasetIndex,
    status: effectiveEpisodeStatus(e.status, job?.status),
    mode: e.mode,
    task: e.task,
    length: e.length,
    durationS: e.length !== null && rate ? e.length / rate : null,
    cameras: e.cameras,
    missingVideos: e.missingVideos,
    error: e.error ?? (job && (job.status === "failed" || job.status === "cancelled") ? (job.error ?? `The encoding job was ${job.status}`) : null),
    jobId: e.jobId,
    jobProgress: job ? job.progress : null,
    deletedAt: e.deletedAt,
    createdAt: e.createdAt,
  };
}

async function jobsFor(db: Db, episodes: Pick<Episode, "jobId">[]): Promise<Map<string, JobInfo>> {
  const ids = episodes.flatMap((e) => (e.jobId ? [e.jobId] : []));
  const jobs = ids.length ? await db.job.findMany({ where: { id: { in: ids } }, select: { id: true, status: true, progress: true, error: true } }) : [];
  return new Map(jobs.map((j) => [j.id, j]));
}

function summarize(dataset: Dataset, episodes: EpisodeRow[], jobs: Map<string, JobInfo>, importJob: ImportJob): DatasetSummary {
  const counts = { ready: 0, encoding: 0, failed: 0, deleted: 0 };
  let totalFrames = 0;
  for (const e of episodes) {
    if (e.deletedAt) {
      counts.deleted++;
      continue;
    }
    const status = effectiveEpisodeStatus(e.status, e.jobId ? jobs.get(e.jobId)?.status : undefined);
    counts[status]++;
    if (status === "ready") totalFrames += e.length ?? 0;
  }
  return {
    id: dataset.id,
    repoId: dataset.repoId,
    source: dataset.source,
    importedVersion: dataset.importedVersion,
    fps: dataset.fps,
    robotType: dataset.robotType,
    cameras: cameraList(dataset, episodes),
    missingVideos: dataset.missingVideos,
    episodesWithoutVideo: episodes.filter((e) => !e.deletedAt && e.missingVideos.length).map((e) => e.number).sort((a, b) => a - b),
    ...importStatus(dataset, importJob),
    episodes: counts,
    totalFrames,
    builtAt: dataset.builtAt,
    createdAt: dataset.createdAt,
  };
}

/** The latest import job of each imported dataset. */
async function importJobsFor(db: Db, orgId: string, datasets: Dataset[]): Promise<Map<string, { status: string; error: string | null }>> {
  const ids = datasets.filter((d) => d.source === "import").map((d) => d.id);
  if (!ids.length) return new Map();
  const rows = await db.$queryRaw<{ datasetId: string; status: string; error: string | null }[]>`
    SELECT DISTINCT ON ("payload"->>'datasetId') "payload"->>'datasetId' AS "datasetId", "status"::text AS "status", "error"
    FROM "Job" WHERE "orgId" = ${orgId}::uuid AND "kind" = ${importDatasetJob.name} AND "payload"->>'datasetId' = ANY(${ids}::text[])
    ORDER BY "payload"->>'datasetId', "createdAt" DESC`;
  return new Map(rows.map((r) => [r.datasetId, r]));
}

export async function listDatasets(db: Db, { orgId }: { orgId: string }): Promise<DatasetSummary[]> {
  const datasets = await db.dataset.findMany({ where: { orgId }, orderBy: { createdAt: "desc" }, include: { episodes: { omit: { rawFiles: true, storedFiles: true } } } });
  const [jobs, imports] = await Promise.all([jobsFor(db, datasets.flatMap((d) => d.episodes)), importJobsFor(db, orgId, datasets)]);
  return datasets.map((d) => summarize(d, d.episodes, jobs, imports.get(d.id)));
}

async function findDataset(db: Db, orgId: string, datasetId: string): Promise<Dataset> {
  const dataset = await db.dataset.findFirst({ where: { id: datasetId, orgId } });
  if (!dataset) throw new AppError("NOT_FOUND", "No such dataset in this organisation");
  return dataset;
}

async function findEpisode(db: Db, orgId: string, episodeId: string): Promise<Episode & { dataset: Dataset }> {
  const episode = await db.episode.findFirst({ where: { id: episodeId, orgId }, include: { dataset: true } });
  if (!episode) throw new AppError("NOT_FOUND", "No such episode in this organisation");
  return episode;
}

export async function getDataset(db: Db, { orgId, datasetId }: { orgId: string; datasetId: string }): Promise<DatasetDetail> {
  const dataset = await findDataset(db, orgId, datasetId);
  // Not the lists of raw files (one entry per frame while an episode waits to be encoded).
  const episodes = await db.episode.findMany({ where: { datasetId }, omit: { rawFiles: true }, orderBy: [{ deletedAt: { sort: "desc", nulls: "first" } }, { datasetIndex: { sort: "asc", nulls: "last" } }, { number: "asc" }] });
  const jobs = await jobsFor(db, episodes);
  const tasks = new Map<string, number>();
  for (const e of episodes) if (!e.deletedAt) tasks.set(e.task, (tasks.get(e.task) ?? 0) + 1);
  const importJob =
    dataset.source === "import"
      ? await db.job.findFirst({ where: { orgId, kind: importDatasetJob.name, payload: { path: ["datasetId"], equals: dataset.id } }, orderBy: { createdAt: "desc" }, select: { id: true, status: true, progress: true, step: true, error: true } })
      : null;
  const keys = datasetKeys(dataset);
  const featureMap = featureMapSchema.safeParse(dataset.featureMap);
  return {
    ...summarize(dataset, episodes, jobs, importJob),
    description: dataset.description,
    importJob,
    jointNames: { action: featureNames(dataset.features, keys.action), state: featureNames(dataset.features, keys.state) },
    featureMap: featureMap.success ? featureMap.data : null,
    tasks: [...tasks].map(([text, count]) => ({ text, episodes: count })),
    episodeList: episodes.map((e) => toEpisodeSummary(e, e.jobId ? jobs.get(e.jobId) : undefined, dataset.fps)),
  };
}

export async function listEpisodes(db: Db, { orgId, datasetId }: { orgId: string; datasetId: string }): Promise<EpisodeSummary[]> {
  return (await getDataset(db, { orgId, datasetId })).episodeList;
}

export async function getEpisode(db: Db, { orgId, episodeId, settings, blobs }: { orgId: string; episodeId: string; settings: { DATASETS_DIR: string }; blobs: BlobStore }): Promise<EpisodeDetail> {
  const episode = await findEpisode(db, orgId, episodeId);
  const jobs = await jobsFor(db, [episode]);
  const summary = toEpisodeSummary(episode, episode.jobId ? jobs.get(episode.jobId) : undefined, episode.dataset.fps);
  const files = episodeFilesOf(episode);
  // Its rows from this machine's copy, fetched from the blob store when there is none (the
  // videos play from the store and are not fetched).
  const dir = episode.status === "ready" ? await localEpisodeDir(blobs, settings, episode, { only: ["episode.json"] }).catch(() => null) : null;
  const stored = dir ? await readStoredEpisode(dir).catch(() => null) : null;
  const all = cameraList(episode.dataset, [episode]);
  const cameras = episode.dataset.featureMap ? all : episode.cameras.length ? episode.cameras : all;
  const videos = await Promise.all(
    cameras.map(async (camera) => {
      const v = stored?.videos[camera];
      const exists = !v || !dir ? false : files ? Boolean(files[`${camera}.mp4`]) : await fs.stat(storedVideoPath(dir, camera)).then(() => true, () => false);
      return { camera, url: exists ? `/api/datasets/${episode.datasetId}/episodes/${episode.id}/video/${camera}` : null, width: v?.width ?? null, height: v?.height ?? null };
    }),
  );
  const width = (rows: number[][]) => rows[0]?.length ?? 0;
  const keys = datasetKeys(episode.dataset);
  const names = (key: string, n: number) => {
    const given = featureNames(episode.dataset.features, key);
    return given.length === n ? given : Array.from({ length: n }, (_, i) => `motor_${i}`);
  };
  const state = stored?.rows.map((r) => r["observation.state"]) ?? [];
  const action = stored?.rows.map((r) => r.action) ?? [];
  const fps = stored?.fps ?? episode.fps ?? episode.dataset.fps ?? 30;
  return {
    episode: summary,
    dataset: { id: episode.dataset.id, repoId: episode.dataset.repoId, fps: episode.dataset.fps, missingVideos: episode.dataset.missingVideos },
    jointNames: { action: names(keys.action, width(action)), state: names(keys.state, width(state)) },
    frames: stored ? { timestamp: stored.rows.map((_, i) => i / fps), state, action } : null,
    videos,
  };
}

/** Takes an episode out of the dataset (the folder is rebuilt without it); it can be restored. */
export async function deleteEpisode(db: Db, { actor, episodeId, settings, blobs }: { actor: OrgActor; episodeId: string; settings: BuilderEnv; blobs: BlobStore }): Promise<{ id: string }> {
  const episode = await findEpisode(db, actor.orgId, episodeId);
  if (episode.deletedAt) return { id: episode.id };
  if (episode.status === "encoding") throw new AppError("CONFLICT", `Episode ${episode.number} is still encoding; delete it once it is done`);
  await rebuildDataset(db, {
    datasetId: episode.datasetId,
    settings,
    blobs,
    change: async (tx) => {
      await tx.episode.update({ where: { id: episode.id }, data: { deletedAt: new Date() } });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "dataset.episode_delete", target: episode.id, data: { repoId: episode.dataset.repoId, number: episode.number } });
    },
  });
  return { id: episode.id };
}

/** Puts a deleted episode back where it was. */
export async function restoreEpisode(db: Db, { actor, episodeId, settings, blobs }: { actor: OrgActor; episodeId: string; settings: BuilderEnv; blobs: BlobStore }): Promise<{ id: string }> {
  const episode = await findEpisode(db, actor.orgId, episodeId);
  if (!episode.deletedAt) return { id: episode.id };
  await rebuildDataset(db, {
    datasetId: episode.datasetId,
    settings,
    blobs,
    change: async (tx) => {
      await tx.episode.update({ where: { id: episode.id }, data: { deletedAt: null } });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "dataset.episode_restore", target: episode.id, data: { repoId: episode.dataset.repoId, number: episode.number } });
    },
  });
  return { id: episode.id };
}

/** Changes a task's text in every episode that has it (meta/tasks.parquet and meta/episodes). */
export async function renameTask(db: Db, { actor, input, settings, blobs }: { actor: OrgActor; input: { datasetId: string; from: string; to: string }; settings: BuilderEnv; blobs: BlobStore }): Promise<{ episodes: number }> {
  const dataset = await findDataset(db, actor.orgId, input.datasetId);
  let changed = 0;
  await rebuildDataset(db, {
    datasetId: dataset.id,
    settings,
    blobs,
    change: async (tx) => {
      changed = (await tx.episode.updateMany({ where: { datasetId: dataset.id, task: input.from }, data: { task: input.to } })).count;
      if (!changed) throw new AppError("NOT_FOUND", `No episode of ${dataset.repoId} has the task ${JSON.stringify(input.from).slice(0, 200)}`);
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "dataset.task_rename", target: dataset.id, data: { repoId: dataset.repoId, from: input.from, to: input.to } });
    },
  });
  return { episodes: changed };
}

/**
 * Encodes a failed episode again from its raw files (still there: they go only once it is in) —
 * here, or in the blob store when they were handed over through it (raw-files.ts).
 */
export async function retryEpisode(db: Db, { actor, episodeId, settings, blobs }: { actor: OrgActor; episodeId: string; settings: { EDGE_UPLOAD_DIR: string }; blobs?: BlobStore }): Promise<{ episodeId: string; jobId: string }> {
  const episode = await findEpisode(db, actor.orgId, episodeId);
  const jobs = await jobsFor(db, [episode]);
  if (effectiveEpisodeStatus(episode.status, episode.jobId ? jobs.get(episode.jobId)?.status : undefined) !== "failed") throw new AppError("CONFLICT", `Episode ${episode.number} has not failed; there is nothing to retry`);
  if (episode.mode === "import") throw new AppError("CONFLICT", "An imported episode is not encoded here; import the dataset again");
  let handedOver: { rawFiles: Prisma.InputJsonValue } | null = null;
  let local: RawEpisode | null = null;
  if (!rawFilesOf(episode)) {
    const root = rawEpisodeDir(settings, episode.dataset.orgId, episode.dataset.repoId);
    local = await findRawEpisode(root, episode.number, episode.mode as "edge" | "local").catch((error: unknown) => {
      throw new AppError("CONFLICT", `${(error as Error).message}. Upload the episode again; it is encoded on arrival`);
    });
    // Registered before raw episodes went through the bucket: handed over now, so the worker that
    // retries it need not see this machine's folder.
    if (handsOverRawEpisodes(blobs)) handedOver = { rawFiles: (await putRawEpisode(blobs, root, local)) as Prisma.InputJsonValue };
  }
  const result = await db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT 1 FROM "Dataset" WHERE "id" = ${episode.datasetId}::uuid FOR UPDATE`;
    const { jobId } = await enqueue(encodeEpisodeJob, { episodeId: episode.id }, { tx, orgId: actor.orgId, createdById: actor.userId });
    await tx.episode.update({ where: { id: episode.id }, data: { status: "encoding", error: null, jobId, ...handedOver } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "dataset.episode_retry", target: episode.id, data: { repoId: episode.dataset.repoId, number: episode.number } });
    return { episodeId: episode.id, jobId };
  });
  if (handedOver) await removeRawEpisode(local).catch(() => {});
  return result;
}

/**
 * The stored MP4 of one camera of a ready episode, for streaming: its blob, or for an episode
 * whose files are not in the blob store yet, the file in its folder.
 */
export async function episodeVideo(db: Db, { orgId, datasetId, episodeId, camera, settings }: { orgId: string; datasetId: string; episodeId: string; camera: string; settings: { DATASETS_DIR: string } }): Promise<{ sha256: string; bytes: number } | { file: string }> {
  const episode = await findEpisode(db, orgId, episodeId);
  if (episode.datasetId !== datasetId) throw new AppError("NOT_FOUND", "No such episode in this dataset");
  if (episode.status !== "ready") throw new AppError("NOT_FOUND", `Episode ${episode.number} has no video yet`);
  if (!episode.cameras.includes(camera)) throw new AppError("NOT_FOUND", `Episode ${episode.number} has no camera ${camera}`);
  const blob = episodeFilesOf(episode)?.[`${camera}.mp4`];
  if (blob) return { sha256: blob.sha256, bytes: blob.bytes };
  const file = storedVideoPath(episodeStoreDir(settings, datasetId, episodeId), camera);
  await fs.stat(file).catch(() => {
    throw new AppError("NOT_FOUND", `The ${camera} video of episode ${episode.number} is missing`);
  });
  return { file };
}
