import fs from "node:fs/promises";
import type { z } from "zod";
import type { Db } from "../db";
import type { BlobStore } from "../storage/blob-store";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { hasRole } from "../auth/roles";
import { compatTrainingStatus } from "../training/compat.service";
import { effectiveEpisodeStatus, getIngestStatus, registerRawEpisode } from "../datasets/ingest.service";
import { handsOverRawEpisodes } from "../datasets/raw-files";
import { rawEpisodeDir } from "../datasets/datasets.schemas";
import { env } from "../env";
import { arrivedEpisodeUpload, releaseEpisodeUpload } from "./bucket-upload-store";
import type { agentSessionSchema, compatStatusSchema, compatUploadCompleteInput, completeEpisodeInput, completeEpisodeOutput, episodeStateQuery, episodeStateSchema } from "./edge.schemas";

// What the agent and the earlier edge clients call once files are in place: register the
// episode (which queues its encoding), and read where a dataset stands.

/** Who an agent's token acts as, for `gantry-agent login`. */
export async function describeAgentSession(db: Db, { actor, maxUploadBytes }: { actor: OrgActor; maxUploadBytes: number }): Promise<z.infer<typeof agentSessionSchema>> {
  const org = await db.org.findUnique({ where: { id: actor.orgId }, select: { name: true } });
  if (!org) throw new AppError("NOT_FOUND", "The token's organisation no longer exists");
  return { orgId: actor.orgId, orgName: org.name, user: actor.label, role: actor.role, canUpload: hasRole(actor.role, "operator"), maxUploadBytes };
}

/**
 * Where the portal stands with one episode. The agent skips an episode that is encoding or in
 * the dataset: sending it again would only put raw frames back that nothing will clear.
 */
export async function readEpisodeState(db: Db, { actor, query }: { actor: OrgActor; query: z.output<typeof episodeStateQuery> }): Promise<z.infer<typeof episodeStateSchema>> {
  const episode = await db.episode.findFirst({ where: { orgId: actor.orgId, number: query.episodeIndex, dataset: { repoId: query.repoId, orgId: actor.orgId } }, select: { status: true, deletedAt: true, jobId: true } });
  if (!episode) return { status: "absent" };
  if (episode.deletedAt) return { status: "deleted" };
  const job = episode.jobId ? await db.job.findUnique({ where: { id: episode.jobId }, select: { status: true } }) : null;
  return { status: effectiveEpisodeStatus(episode.status, job?.status) };
}

/** `POST /api/edge/episodes`: every file of an episode has arrived. */
export async function completeEpisode(db: Db, { actor, input, blobs }: { actor: OrgActor; input: z.output<typeof completeEpisodeInput>; blobs: BlobStore }): Promise<z.infer<typeof completeEpisodeOutput>> {
  // Through a bucket, the upload's files are already in it (bucket-upload-store.ts); otherwise in the repo's raw folder.
  const arrived = handsOverRawEpisodes(blobs) ? await arrivedEpisodeUpload(db, { orgId: actor.orgId, repoId: input.repoId, episodeIndex: input.episodeIndex }) : null;
  const result = await registerRawEpisode(db, { orgId: actor.orgId, createdById: actor.userId, repoId: input.repoId, episodeIndex: input.episodeIndex, task: input.task, fps: input.fps, mode: input.mode, blobs, arrived: arrived?.files });
  // The episode names the files now (or its registration stood as it was): the upload forgets them.
  if (arrived) await releaseEpisodeUpload(db, arrived.uploadId);
  return result;
}

/** The earlier clients' `POST /edge/upload-complete`, after rsync put the frames in place. */
export async function completeCompatUpload(db: Db, { actor, input, blobs }: { actor: OrgActor; input: z.output<typeof compatUploadCompleteInput>; blobs: BlobStore }): Promise<{ status: "encoding"; message: string; job_id: string | null }> {
  const result = await registerRawEpisode(db, { orgId: actor.orgId, createdById: actor.userId, repoId: input.repo_id, episodeIndex: input.episode_index, task: input.task, fps: input.fps, mode: "edge", blobs }).catch(async (error: unknown) => {
    // Nothing of the repo on this machine: most often the frames went to another machine's folder.
    if (error instanceof AppError && error.code === "BAD_REQUEST" && !(await isFolder(rawEpisodeDir(env(), actor.orgId, input.repo_id)))) {
      throw new AppError(
        "BAD_REQUEST",
        `Nothing of ${input.repo_id} has arrived in this portal machine's upload folder (EDGE_UPLOAD_DIR/<organisation>/${input.repo_id}); rsync the episode's frames there before calling upload-complete. With several web machines behind one address, EDGE_UPLOAD_DIR must be one folder they all mount (docs/deploy.md)`,
      );
    }
    throw error;
  });
  const message = result.alreadyRegistered
    ? `Episode ${input.episode_index} of ${input.repo_id} was already registered; nothing new to encode`
    : `Episode ${input.episode_index} of ${input.repo_id} is queued for encoding`;
  return { status: "encoding", message, job_id: result.jobId };
}

async function isFolder(dir: string): Promise<boolean> {
  return fs.stat(dir).then((s) => s.isDirectory(), () => false);
}

/** `GET /edge/status/{repo_id}` in the earlier shape. It carries no credential of any kind. */
export async function readCompatStatus(db: Db, { actor, repoId }: { actor: OrgActor; repoId: string }): Promise<z.infer<typeof compatStatusSchema>> {
  const status = await getIngestStatus(db, { orgId: actor.orgId, repoId });
  const base = { repo_id: repoId, status: status.status, progress: status.progress, message: status.message, episodes: status.episodes };
  // Once episodes are in, the dataset's latest training run is what the earlier clients wait on.
  const training = status.status === "COMPLETED" ? await compatTrainingStatus(db, { orgId: actor.orgId, repoId }) : null;
  return training ? { ...base, ...training } : base;
}
