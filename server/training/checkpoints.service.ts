import path from "node:path";
import type { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { trainingCheckpointJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import type { ProgressReporter } from "../jobs/progress";
import type { BlobStore } from "../storage/blob-store";
import { quoteShell } from "../ssh/shell-quote";
import { fetchCheckpoint, listCheckpoint, registerCheckpoint } from "./checkpoint.service";
import { connectTrainingHost, run } from "./host";
import { parseCheckpointSteps } from "./run-host";
import type { runDetailSchema } from "./training.schemas";

// Any checkpoint a run saved (checkpoints/<step>), not just the last, can be brought home on
// request — to try an earlier policy, or to keep one from a run that later diverged. It
// becomes a version of the run's model like the final one, with its step in its source.

type RunCheckpoints = z.infer<typeof runDetailSchema>["checkpoints"];

/** The run's checkpoints: those its host showed, and those already brought home, by step. */
export async function checkpointsOfRun(db: Db, run: { id: string; orgId: string; hostCheckpoints: number[] }): Promise<RunCheckpoints> {
  const [versions, jobs] = await Promise.all([
    db.modelVersion.findMany({ where: { orgId: run.orgId, trainingRunId: run.id, kind: "lerobot-checkpoint" }, select: { id: true, modelId: true, number: true, source: true } }),
    db.job.findMany({ where: { orgId: run.orgId, kind: trainingCheckpointJob.name, status: { in: ["queued", "running"] }, payload: { path: ["runId"], equals: run.id } }, select: { id: true, payload: true } }),
  ]);
  const stepOf = (source: unknown) => Number((source as { step?: unknown } | null)?.step);
  const home = new Map(versions.map((v) => [stepOf(v.source), { id: v.id, modelId: v.modelId, number: v.number }]));
  const pulling = new Map(jobs.map((j) => [Number((j.payload as { step?: unknown }).step), j.id]));
  const steps = [...new Set([...run.hostCheckpoints, ...home.keys(), ...pulling.keys()])].filter(Number.isFinite).sort((a, b) => a - b);
  return steps.map((step) => ({ step, onHost: run.hostCheckpoints.includes(step), version: home.get(step) ?? null, pullJobId: pulling.get(step) ?? null }));
}

/** Queues bringing home the run's checkpoint at `step` (once: a pull already queued is returned). */
export async function requestCheckpointPull(db: Db, { actor, runId, step }: { actor: OrgActor; runId: string; step: number }): Promise<{ jobId: string | null; versionId: string | null }> {
  const r = await db.trainingRun.findFirst({ where: { id: runId, orgId: actor.orgId } });
  if (!r) throw new AppError("NOT_FOUND", "That training run does not exist in this organisation");
  const have = (await checkpointsOfRun(db, r)).find((c) => c.step === step);
  if (have?.version) return { jobId: null, versionId: have.version.id };
  if (have?.pullJobId) return { jobId: have.pullJobId, versionId: null };
  if (!r.outputDir) throw new AppError("CONFLICT", "This run has not started on its host yet; it has no checkpoints");
  if (!have?.onHost) throw new AppError("NOT_FOUND", `The run's host has not shown a checkpoint at step ${step}${r.hostCheckpoints.length ? `; it holds steps ${r.hostCheckpoints.join(", ")}` : ""}`);
  return db.$transaction(async (tx) => {
    const { jobId } = await enqueue(trainingCheckpointJob, { runId, step }, { tx, orgId: actor.orgId, createdById: actor.userId });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "training.run.pull_checkpoint", target: `training-run:${runId}`, data: { name: r.name, step } });
    return { jobId, versionId: null };
  });
}

/** The pull job: finds checkpoints/<step> in the run's output folder, brings it home, registers it. */
export async function pullCheckpoint(db: Db, { runId, step, blobs, progress, signal }: { runId: string; step: number; blobs: BlobStore; progress: ProgressReporter; signal: AbortSignal }): Promise<{ versionId: string }> {
  const r = await db.trainingRun.findUnique({ where: { id: runId }, include: { target: true, dataset: true } });
  if (!r) throw new AppError("NOT_FOUND", "The training run was deleted");
  if (!r.outputDir) throw new AppError("CONFLICT", "The run has no output folder on its host");
  await progress.step(`Looking for step ${step} on ${r.target.name}`, 0.02);
  const session = await connectTrainingHost(r.target, { signal });
  try {
    const checkpoints = path.posix.join(r.outputDir, "checkpoints");
    const names = (await run(session, `ls -1 ${quoteShell(checkpoints)} 2>/dev/null | grep -E '^[0-9]{1,12}$' || true`, { what: "Listing the run's checkpoints", signal })).split("\n").map((n) => n.trim()).filter(Boolean);
    const name = names.find((n) => Number(n) === step);
    if (!name) {
      await db.trainingRun.update({ where: { id: r.id }, data: { hostCheckpoints: parseCheckpointSteps(names.join(" ")) } });
      throw new AppError("NOT_FOUND", `${r.target.name} no longer holds a checkpoint at step ${step} in ${checkpoints}`);
    }
    const checkpoint = await listCheckpoint(session, path.posix.join(checkpoints, name), signal);
    await progress.step(`Fetching the checkpoint at step ${step}`, 0.05);
    await fetchCheckpoint(session, { ...checkpoint, blobs, progress, signal, span: [0.05, 0.95] });
    const version = await registerCheckpoint(db, { run: r, files: checkpoint.files, step, targetName: r.target.name, repoId: r.dataset.repoId });
    await progress.log(`The checkpoint at step ${step} is version ${version.number} of the model ${r.name}`);
    return { versionId: version.versionId };
  } finally {
    session.close();
  }
}
