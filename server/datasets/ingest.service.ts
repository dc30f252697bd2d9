import type { Db, Tx } from "../db";
import { env } from "../env";
import { AppError } from "../errors";
import { encodeEpisodeJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import { UTC_NOW } from "../jobs/progress";
import { episodeNumberSchema, parseRepoId, rawEpisodeDir, taskTextSchema } from "./datasets.schemas";
import { findRawEpisode, listingOf, removeRawEpisode, type IngestMode } from "./raw-episode";
import { handsOverRawEpisodes, putRawEpisode, type RawFiles } from "./raw-files";
import type { BlobStore } from "../storage/blob-store";
import type { Prisma } from "../generated/prisma/client";

// The two calls the upload paths make (tus, rsync's upload-complete): register a raw episode
// that has fully arrived, and read how a dataset's episodes are doing.

export interface RegisterRawEpisodeInput {
  orgId: string;
  createdById: string | null;
  repoId: string;
  episodeIndex: number;
  task?: string;
  fps?: number;
  mode: IngestMode;
  /** With a bucket, the raw files are put there for the worker that encodes them (raw-files.ts). */
  blobs?: BlobStore;
  /** Where the raw files are (default: this process's settings). */
  settings?: { EDGE_UPLOAD_DIR: string };
  /**
   * The files, already in the blob store (an agent's upload through a bucket, path → blob),
   * instead of the repo's raw folder.
   */
  arrived?: RawFiles;
}

/** Whether an episode's registration stands as it is (a new upload of it changes nothing), rather than being encoded afresh. */
function registrationStands(existing: { status: string; deletedAt: Date | null }, jobStatus: string | undefined): boolean {
  const jobGaveUp = jobStatus === "failed" || jobStatus === "cancelled";
  return existing.status !== "failed" && !(existing.status === "encoding" && jobGaveUp) && !(existing.status === "ready" && existing.deletedAt);
}

/**
 * Whether episodes may arrive for a repo id of this organisation: a new one, or a dataset of
 * its own that takes episodes from the edge. Checked when an upload starts and again when the
 * episode is registered. Another organisation's repo ids are a namespace apart, so nothing here
 * can tell one organisation what another holds.
 */
export async function checkRepoTakesEpisodes(db: Db | Tx, { orgId, repoId }: { orgId: string; repoId: string }): Promise<void> {
  const dataset = await db.dataset.findUnique({ where: { orgId_repoId: { orgId, repoId: parseRepoId(repoId) } }, select: { source: true } });
  if (dataset && dataset.source !== "edge") throw new AppError("CONFLICT", `${repoId} is an imported dataset; upload new episodes to a new repo id`);
}

/** Finds the organisation's dataset for a repo id, creating it when there is none. */
async function datasetForRepo(tx: Tx, { orgId, repoId, createdById }: { orgId: string; repoId: string; createdById: string | null }) {
  // ON CONFLICT: two agents registering the first episodes of a new dataset at once get one dataset.
  await tx.$executeRaw`INSERT INTO "Dataset" ("id", "orgId", "repoId", "source", "createdById", "createdAt", "updatedAt")
    VALUES (gen_random_uuid(), ${orgId}::uuid, ${repoId}, 'edge', ${createdById}::uuid, ${UTC_NOW}, ${UTC_NOW}) ON CONFLICT ("orgId", "repoId") DO NOTHING`;
  await checkRepoTakesEpisodes(tx, { orgId, repoId });
  return tx.dataset.findUniqueOrThrow({ where: { orgId_repoId: { orgId, repoId } } });
}

/**
 * Records an uploaded episode and queues its encoding, in one transaction. Registering the
 * same episode again does nothing (alreadyRegistered) unless its encoding failed, which
 * queues it again.
 */
export async function registerRawEpisode(db: Db, input: RegisterRawEpisodeInput): Promise<{ episodeId: string; jobId: string | null; alreadyRegistered: boolean }> {
  const repoId = parseRepoId(input.repoId);
  const number = episodeNumberSchema.parse(input.episodeIndex);
  const task = taskTextSchema.parse(input.task ?? "");
  if (input.fps !== undefined && !(Number.isInteger(input.fps) && input.fps >= 1 && input.fps <= 1000)) throw new AppError("BAD_REQUEST", `fps must be a whole number from 1 to 1000, not ${input.fps}`);
  const root = rawEpisodeDir(input.settings ?? env(), input.orgId, repoId);
  /** The episode's registration, when it stands as it is (a new upload of it would change nothing). */
  const standing = async () => {
    const existing = await db.episode.findFirst({ where: { orgId: input.orgId, number, dataset: { orgId: input.orgId, repoId } }, select: { id: true, status: true, deletedAt: true, jobId: true } });
    const job = existing?.jobId ? await db.job.findUnique({ where: { id: existing.jobId }, select: { status: true } }) : null;
    return existing && registrationStands(existing, job?.status) ? existing : null;
  };
  const asRegistered = (existing: { id: string; jobId: string | null }) => ({ episodeId: existing.id, jobId: existing.jobId, alreadyRegistered: true });
  /** Its files went to the bucket when it was registered: an agent asking again (it missed the answer) hears it is registered. */
  const registeredMeanwhile = async (error: unknown) => {
    const existing = handsOverRawEpisodes(input.blobs) ? await standing() : null;
    if (existing) return asRegistered(existing);
    throw error;
  };
  let raw: Awaited<ReturnType<typeof findRawEpisode>>;
  try {
    raw = input.arrived ? await findRawEpisode("", number, input.mode, listingOf(Object.keys(input.arrived))) : await findRawEpisode(root, number, input.mode);
  } catch (error) {
    return registeredMeanwhile(error);
  }
  const cameras = raw.cameras.map((c) => c.name);
  // With a bucket, the files are in it before the job that encodes them is queued: that job may
  // run on a machine that does not see this one's EDGE_UPLOAD_DIR. Not for an episode whose
  // registration stands (nothing new would be encoded).
  let rawFiles: RawFiles | null = input.arrived ?? null;
  if (handsOverRawEpisodes(input.blobs) && !rawFiles) {
    const existing = await standing();
    if (existing) return asRegistered(existing);
    try {
      rawFiles = await putRawEpisode(input.blobs, root, raw);
    } catch (error) {
      // A registration of the same episode that was already putting the files (an agent that
      // gave up waiting and asked again) recorded them and removed them here first.
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return registeredMeanwhile(error);
      throw error;
    }
  }
  const handedOver = rawFiles ? { rawFiles: rawFiles as Prisma.InputJsonValue } : {};

  const result = await db.$transaction(async (tx) => {
    const dataset = await datasetForRepo(tx, { orgId: input.orgId, repoId, createdById: input.createdById });
    // Serialises registrations of one dataset, so the same episode twice makes one row and one job.
    await tx.$executeRaw`SELECT 1 FROM "Dataset" WHERE "id" = ${dataset.id}::uuid FOR UPDATE`;
    const existing = await tx.episode.findUnique({ where: { datasetId_number: { datasetId: dataset.id, number } } });
    if (existing) {
      const job = existing.jobId ? await tx.job.findUnique({ where: { id: existing.jobId } }) : null;
      if (registrationStands(existing, job?.status)) {
        return { episodeId: existing.id, jobId: existing.jobId, alreadyRegistered: true };
      }
      // Its encoding gave up after the check above: its new files were not put in the bucket.
      if (handsOverRawEpisodes(input.blobs) && !rawFiles) throw new AppError("CONFLICT", `Episode ${number} of ${repoId} stopped encoding while it was being registered again; register it once more`);
      // A failed episode uploaded again (or a deleted one recorded again) is encoded afresh.
      const { jobId } = await enqueue(encodeEpisodeJob, { episodeId: existing.id }, { tx, orgId: input.orgId, createdById: input.createdById });
      await tx.episode.update({
        where: { id: existing.id },
        data: { status: "encoding", error: null, jobId, mode: input.mode, cameras, task: task || existing.task, fps: input.fps ?? existing.fps, deletedAt: null, datasetIndex: null, ...handedOver },
      });
      return { episodeId: existing.id, jobId, alreadyRegistered: false };
    }
    const episode = await tx.episode.create({
      data: { orgId: input.orgId, datasetId: dataset.id, number, mode: input.mode, task, fps: input.fps ?? null, cameras, createdById: input.createdById, ...handedOver },
    });
    const { jobId } = await enqueue(encodeEpisodeJob, { episodeId: episode.id }, { tx, orgId: input.orgId, createdById: input.createdById });
    await tx.episode.update({ where: { id: episode.id }, data: { jobId } });
    return { episodeId: episode.id, jobId, alreadyRegistered: false };
  });
  // Recorded: this machine's copy is not needed any more (the worker fetches the files). Were
  // this cut short, the copy would stay until the dataset is deleted; nothing reads it.
  if (rawFiles && !input.arrived && !result.alreadyRegistered) await removeRawEpisode(raw).catch(() => {});
  return result;
}

export interface IngestStatus {
  status: "UPLOADING" | "ENCODING" | "COMPLETED" | "FAILED";
  progress: number;
  episodes: { total: number; encoded: number; failed: number };
  message: string;
}

/**
 * Where a dataset's episodes stand. UPLOADING: the dataset exists but no episode has been
 * registered yet; ENCODING while any episode is queued or encoding; FAILED when encoding is
 * over and some episode failed; COMPLETED otherwise. Progress is over the episodes not deleted.
 */
export async function getIngestStatus(db: Db, { orgId, repoId }: { orgId: string; repoId: string }): Promise<IngestStatus> {
  const dataset = await db.dataset.findFirst({ where: { repoId: parseRepoId(repoId), orgId } });
  if (!dataset) throw new AppError("NOT_FOUND", `No dataset ${repoId} in this organisation`);
  const episodes = await db.episode.findMany({ where: { datasetId: dataset.id, deletedAt: null }, select: { number: true, status: true, error: true, jobId: true } });
  const jobs = await db.job.findMany({ where: { id: { in: episodes.flatMap((e) => (e.jobId ? [e.jobId] : [])) } }, select: { id: true, status: true, progress: true, error: true } });
  const jobById = new Map(jobs.map((j) => [j.id, j]));
  let encoded = 0;
  let failed = 0;
  let progressSum = 0;
  let lastFailure: { number: number; error: string } | null = null;
  for (const e of episodes) {
    const job = e.jobId ? jobById.get(e.jobId) : undefined;
    const status = effectiveEpisodeStatus(e.status, job?.status);
    if (status === "ready") {
      encoded++;
      progressSum += 1;
    } else if (status === "failed") {
      failed++;
      progressSum += 1;
      if (!lastFailure || e.number > lastFailure.number) lastFailure = { number: e.number, error: e.error ?? job?.error ?? "encoding failed" };
    } else {
      progressSum += job?.progress ?? 0;
    }
  }
  const total = episodes.length;
  const pending = total - encoded - failed;
  const counts = { total, encoded, failed };
  if (total === 0) return { status: "UPLOADING", progress: 0, episodes: counts, message: `Waiting for the first episode of ${dataset.repoId}` };
  const progress = Math.round((progressSum / total) * 1000) / 1000;
  if (pending > 0) return { status: "ENCODING", progress, episodes: counts, message: `Encoding ${pending} episode${pending === 1 ? "" : "s"}; ${encoded} of ${total} in the dataset` };
  if (failed > 0) return { status: "FAILED", progress: 1, episodes: counts, message: `${failed} episode${failed === 1 ? "" : "s"} failed (episode ${lastFailure!.number}: ${lastFailure!.error}); retry from the dataset page or upload again` };
  return { status: "COMPLETED", progress: 1, episodes: counts, message: `All ${total} episode${total === 1 ? "" : "s"} are in the dataset` };
}

/** An episode whose job has given up (failed, cancelled) counts as failed even before the task said so. */
export function effectiveEpisodeStatus(status: "encoding" | "ready" | "failed", jobStatus?: string): "encoding" | "ready" | "failed" {
  if (status === "encoding" && (jobStatus === "failed" || jobStatus === "cancelled")) return "failed";
  return status;
}
