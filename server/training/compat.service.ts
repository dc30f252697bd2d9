import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { startRun } from "./runs.service";
import { FINAL_STATUSES } from "./training.schemas";

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
