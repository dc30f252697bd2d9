import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { startRun } from "./runs.service";
import { FINAL_STATUSES } from "./training.schemas";
import { edgeRepoIdSchema } from "../edge/edge.schemas";
import { versionManifest } from "../models/version-files.service";

// The earlier edge clients' training calls: `POST /edge/train/{repo_id}` starts a run on the
// organisation's default target; `GET /edge/status/{repo_id}` reports it. Where the earlier
// service answered with an SSH host and a base64 password to fetch the model from, Gantry
// answers with the registered checkpoint (downloaded through the portal, by token holders).

export const compatTrainInput = z
  .object({
    policy_type: z.string().trim().min(1).max(64).optional(),
    policy: z.string().trim().min(1).max(64).optional(),
    steps: z.number().int().min(1).max(10_000_000).optional(),
    save_freq: z.number().int().min(1).optional(),
    log_freq: z.number().int().min(1).optional(),
  })
  .default({});

export async function startCompatTraining(db: Db, { actor, repoId, input }: { actor: OrgActor; repoId: string; input: z.infer<typeof compatTrainInput> }) {
  const dataset = await db.dataset.findUnique({ where: { orgId_repoId: { orgId: actor.orgId, repoId } }, select: { id: true } });
  if (!dataset) throw new AppError("NOT_FOUND", `No dataset ${repoId} in this organisation`);
  const steps = input.steps ?? 100_000;
  const { runId, jobId } = await startRun(db, {
    actor,
    input: { datasetId: dataset.id, policyType: input.policy_type ?? input.policy ?? "act", steps, saveFreq: Math.min(input.save_freq ?? 20_000, steps), logFreq: input.log_freq ?? 200 },
  });
  return { status: "TRAINING" as const, transaction_id: runId, job_id: jobId, message: `Training of ${repoId} queued on the organisation's default target` };
}

export interface CompatTraining {
  status: "TRAINING" | "COMPLETED" | "FAILED";
  transaction_id: string;
  progress: number;
  message: string;
  model_path?: string;
  model_version_id?: string;
}

/** The dataset's latest training run in the earlier shape, or null when it has none. */
export async function compatTrainingStatus(db: Db, { orgId, repoId }: { orgId: string; repoId: string }): Promise<CompatTraining | null> {
  const run = await db.trainingRun.findFirst({ where: { orgId, dataset: { orgId, repoId } }, orderBy: { createdAt: "desc" } });
  if (!run) return null;
  const progress = Math.min(1, (run.lastStep ?? 0) / run.steps);
  if (run.status === "succeeded" && run.checkpointVersionId) {
    const version = await db.modelVersion.findUnique({ where: { id: run.checkpointVersionId }, select: { number: true, model: { select: { name: true } } } });
    return { status: "COMPLETED", transaction_id: run.id, progress: 1, message: `Training finished at step ${run.steps}`, model_path: `${version?.model.name ?? run.name}/v${version?.number ?? 1}`, model_version_id: run.checkpointVersionId };
  }
  if ((FINAL_STATUSES as string[]).includes(run.status)) return { status: "FAILED", transaction_id: run.id, progress, message: `Training ${run.status}: ${run.error ?? "no reason recorded"}` };
  return { status: "TRAINING", transaction_id: run.id, progress, message: run.status === "running" ? `Training: step ${run.lastStep ?? 0} of ${run.steps}` : `Training: ${run.status}` };
}

/**
 * What `gantry-agent pull-model <repo_id|run>` downloads: a run's registered checkpoint (a run
 * id), or that of the dataset's latest run that finished with one (a repo id).
 */
export async function checkpointToPull(db: Db, { orgId, ref }: { orgId: string; ref: string }): Promise<{ versionId: string; runId: string; runName: string; step: number }> {
  const isRunId = z.uuid().safeParse(ref).success;
  if (isRunId) {
    const run = await db.trainingRun.findFirst({ where: { id: ref, orgId }, select: { id: true, name: true, status: true, steps: true, checkpointVersionId: true } });
    if (!run) throw new AppError("NOT_FOUND", "No training run with that id in this organisation");
    if (!run.checkpointVersionId) throw new AppError("CONFLICT", `The run ${run.name} has no checkpoint at home (it is ${run.status}); pull it once it has succeeded`);
    return { versionId: run.checkpointVersionId, runId: run.id, runName: run.name, step: run.steps };
  }
  const dataset = await db.dataset.findUnique({ where: { orgId_repoId: { orgId, repoId: ref } }, select: { id: true } });
  if (!dataset) throw new AppError("NOT_FOUND", `No dataset ${ref} in this organisation`);
  const run = await db.trainingRun.findFirst({ where: { orgId, datasetId: dataset.id, checkpointVersionId: { not: null } }, orderBy: { finishedAt: "desc" }, select: { id: true, name: true, steps: true, checkpointVersionId: true } });
  if (!run) throw new AppError("NOT_FOUND", `No training run of ${ref} has brought a checkpoint home yet`);
  return { versionId: run.checkpointVersionId!, runId: run.id, runName: run.name, step: run.steps };
}

/**
 * What `gantry-agent pull-model` downloads for a repo id or run id: the run, the checkpoint's
 * files with sha256 and size, and the portal URL each is fetched from.
 */
export async function checkpointPullManifest(db: Db, { orgId, ref }: { orgId: string; ref: string }) {
  // A name that cannot be a dataset or a run is one this organisation does not have.
  if (!z.uuid().safeParse(ref).success && !edgeRepoIdSchema.safeParse(ref).success) throw new AppError("NOT_FOUND", "No such dataset or training run in this organisation: the URL names neither a repo id (owner/name) nor a run id");
  const pull = await checkpointToPull(db, { orgId, ref });
  const manifest = await versionManifest(db, { orgId, versionId: pull.versionId });
  const files = manifest.files.map((f) => ({ ...f, url: `/api/models/versions/${manifest.versionId}/files/${f.path.split("/").map(encodeURIComponent).join("/")}` }));
  return { name: pull.runName, run: { id: pull.runId, name: pull.runName, step: pull.step }, ...manifest, files };
}
