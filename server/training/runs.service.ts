import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { trainingRunJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import { cancelJob } from "../jobs/jobs.service";
import { Prisma } from "../generated/prisma/client";
import { renderCommand } from "./command";
import { describeSlurmState } from "./slurm";
import { checkpointsOfRun } from "./checkpoints.service";
import { checkQualityGate } from "../evaluation/gate.service";
import { checkRole } from "../auth/roles";
import { FINAL_STATUSES, createRunInput, type CreateRunInput, type runDetailSchema, type runLogInput, type runLogSchema, type runMetricsSchema, type RunStatus, type RunSummary } from "./training.schemas";

// Training runs as people see them: start one from a dataset, follow it, cancel, resume from
// its last checkpoint (a new attempt in the same output folder) or retry afresh (a new attempt
// in a new output folder). Runs on one target queue behind each other, `concurrency` at a time
// (one per GPU), through the job queue's named queues.

const summaryInclude = {
  dataset: { select: { id: true, repoId: true } },
  target: { select: { id: true, name: true } },
} satisfies Prisma.TrainingRunInclude;
type SummaryRow = Prisma.TrainingRunGetPayload<{ include: typeof summaryInclude }>;

async function checkpointsOf(db: Db, ids: (string | null)[]) {
  const wanted = ids.filter((x): x is string => !!x);
  if (!wanted.length) return new Map<string, RunSummary["checkpointVersion"]>();
  const rows = await db.modelVersion.findMany({ where: { id: { in: wanted } }, select: { id: true, modelId: true, number: true, model: { select: { name: true } } } });
  return new Map(rows.map((v) => [v.id, { id: v.id, modelId: v.modelId, modelName: v.model.name, number: v.number }]));
}

function toSummary(r: SummaryRow, versions: Map<string, RunSummary["checkpointVersion"]>): RunSummary {
  return {
    id: r.id, name: r.name, status: r.status, policyType: r.policyType, steps: r.steps, lastStep: r.lastStep, attempt: r.attempt,
    dataset: r.dataset, target: r.target, error: r.error, createdAt: r.createdAt, startedAt: r.startedAt, finishedAt: r.finishedAt, jobId: r.jobId,
    checkpointVersion: r.checkpointVersionId ? (versions.get(r.checkpointVersionId) ?? null) : null,
  };
}

export async function listRuns(db: Db, { orgId, datasetId }: { orgId: string; datasetId?: string }): Promise<RunSummary[]> {
  const rows = await db.trainingRun.findMany({ where: { orgId, ...(datasetId ? { datasetId } : {}) }, orderBy: { createdAt: "desc" }, take: 200, include: summaryInclude });
  const versions = await checkpointsOf(db, rows.map((r) => r.checkpointVersionId));
  return rows.map((r) => toSummary(r, versions));
}

async function findRun(db: Db, orgId: string, runId: string) {
  const run = await db.trainingRun.findFirst({ where: { id: runId, orgId }, include: { ...summaryInclude, target: true } });
  if (!run) throw new AppError("NOT_FOUND", "That training run does not exist in this organisation");
  return run;
}

export async function getRun(db: Db, { orgId, runId }: { orgId: string; runId: string }): Promise<z.infer<typeof runDetailSchema>> {
  const r = await findRun(db, orgId, runId);
  const versions = await checkpointsOf(db, [r.checkpointVersionId]);
  const exported = r.exportVersionId ? await db.modelVersion.findFirst({ where: { id: r.exportVersionId, orgId }, select: { id: true, modelId: true, number: true, status: true } }) : null;
  const output = r.outputDir ?? "<output>";
  const command = (() => {
    try {
      return renderCommand(r.target.commandTemplate, { repo_id: r.dataset.repoId, dataset: "<dataset>", policy: r.policyType, output, name: r.name, steps: String(r.steps), save_freq: String(r.saveFreq), log_freq: String(r.logFreq) }, r.extraArgs);
    } catch (error) {
      return `(${(error as Error).message})`;
    }
  })();
  return {
    ...toSummary({ ...r, target: { id: r.target.id, name: r.target.name } }, versions),
    saveFreq: r.saveFreq, logFreq: r.logFreq, extraArgs: r.extraArgs, runDir: r.runDir, outputDir: r.outputDir, exitCode: r.exitCode,
    logTruncated: r.logTruncated, lastMetrics: (r.lastMetrics as Record<string, number> | null) ?? null, unreachableSince: r.unreachableSince, command,
    slurm: r.slurmJobId ? { jobId: r.slurmJobId, state: r.slurmState, reason: r.slurmReason, words: describeSlurmState({ state: r.slurmState, reason: r.slurmReason }) } : null,
    transaction: r.transactionId ? { id: r.transactionId, status: r.apiStatus } : null,
    checkpoints: await checkpointsOfRun(db, r),
    exportVersion: exported ? { id: exported.id, modelId: exported.modelId, number: exported.number, status: exported.status } : null,
    exportError: r.exportError,
  };
}

export async function readRunLog(db: Db, { orgId, input }: { orgId: string; input: z.infer<typeof runLogInput> }): Promise<z.infer<typeof runLogSchema>> {
  const r = await findRun(db, orgId, input.runId);
  const attempt = input.attempt ?? r.attempt;
  const chunks = await db.trainingLogChunk.findMany({ where: { runId: r.id, attempt, offset: { gt: BigInt(input.after) } }, orderBy: { offset: "asc" }, take: input.limit });
  return { attempt, chunks: chunks.map((c) => ({ offset: Number(c.offset), text: c.text })), truncated: r.logTruncated };
}

export async function readRunMetrics(db: Db, { orgId, runId }: { orgId: string; runId: string }): Promise<z.infer<typeof runMetricsSchema>> {
  await findRun(db, orgId, runId);
  const rows = await db.trainingMetric.findMany({ where: { runId }, orderBy: [{ step: "asc" }, { id: "asc" }], take: 20_000 });
  const numbers = (v: unknown) => Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => typeof x === "number")) as Record<string, number>;
  return {
    train: rows.filter((m) => m.kind === "train").map((m) => ({ step: m.step, values: numbers(m.values) })),
    gpu: rows.filter((m) => m.kind === "gpu").map((m) => ({ at: m.at, step: m.step, values: numbers(m.values) })),
  };
}

const queueOf = (targetId: string, slot: number) => (slot === 0 ? `training-target:${targetId}` : `training-target:${targetId}:${slot}`);

/**
 * The queue a new attempt waits in: a target runs `concurrency` runs at once (one per GPU), one
 * queue each; the attempt joins the one with the fewest runs not yet ended. The target's row is
 * locked, so two runs started together never pick the same queue by accident.
 */
async function pickQueueSlot(tx: Prisma.TransactionClient, target: { id: string; concurrency: number }, exceptRunId?: string): Promise<number> {
  if (target.concurrency <= 1) return 0;
  await tx.$queryRaw`SELECT "id" FROM "TrainingTarget" WHERE "id" = ${target.id}::uuid FOR UPDATE`;
  const busy = await tx.trainingRun.groupBy({ by: ["queueSlot"], where: { targetId: target.id, status: { notIn: [...FINAL_STATUSES] }, ...(exceptRunId ? { id: { not: exceptRunId } } : {}) }, _count: { _all: true } });
  const load = (slot: number) => busy.find((b) => b.queueSlot === slot)?._count._all ?? 0;
  let best = 0;
  for (let slot = 1; slot < target.concurrency; slot++) if (load(slot) < load(best)) best = slot;
  return best;
}

export async function startRun(db: Db, { actor, input: raw }: { actor: OrgActor; input: z.input<typeof createRunInput> }): Promise<{ runId: string; jobId: string }> {
  const parsed = createRunInput.safeParse(raw);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `The run's settings are not valid: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
  const input: CreateRunInput = parsed.data;
  const dataset = await db.dataset.findFirst({ where: { id: input.datasetId, orgId: actor.orgId } });
  if (!dataset) throw new AppError("NOT_FOUND", "That dataset does not exist in this organisation");
  if (!dataset.buildId) throw new AppError("CONFLICT", `${dataset.repoId} has no episodes in it yet; there is nothing to train on`);
  const gate = await checkQualityGate(db, { orgId: actor.orgId, datasetId: dataset.id });
  if (!gate.passed) {
    const report = gate.evaluationId ? ` (report: /datasets/${dataset.id}/evaluations/${gate.evaluationId})` : "";
    if (!input.gateOverride) throw new AppError("CONFLICT", `${dataset.repoId} does not pass the organisation's quality gate: ${gate.failures.join("; ")}${report}. An admin can start the run anyway, giving a reason`);
    checkRole(actor, "admin");
  }
  const target = input.targetId
    ? await db.trainingTarget.findFirst({ where: { id: input.targetId, orgId: actor.orgId } })
    : ((await db.trainingTarget.findFirst({ where: { orgId: actor.orgId, isDefault: true } })) ?? (await db.trainingTarget.findFirst({ where: { orgId: actor.orgId }, orderBy: { createdAt: "asc" } })));
  if (!target) throw new AppError(input.targetId ? "NOT_FOUND" : "CONFLICT", input.targetId ? "That training target does not exist in this organisation" : "This organisation has no training target yet; an admin adds one under Training → Targets");
  if (!target.pinnedHostKey) throw new AppError("CONFLICT", `${target.name} has not been tested yet; an admin runs "Test target" once so its host key is pinned`);
  const name = input.name ?? `${dataset.repoId.split("/").pop()}-${input.policyType}`;
  return db.$transaction(async (tx) => {
    const queueSlot = await pickQueueSlot(tx, target);
    const run = await tx.trainingRun.create({
      data: { orgId: actor.orgId, targetId: target.id, datasetId: dataset.id, name, policyType: input.policyType, steps: input.steps, saveFreq: input.saveFreq, logFreq: input.logFreq, extraArgs: input.extraArgs, createdById: actor.userId, queueSlot },
    });
    const { jobId } = await enqueue(trainingRunJob, { runId: run.id }, { tx, orgId: actor.orgId, createdById: actor.userId, queue: queueOf(target.id, queueSlot) });
    await tx.trainingRun.update({ where: { id: run.id }, data: { jobId } });
    if (!gate.passed) await recordAudit(tx, { orgId: actor.orgId, actor, action: "training.run.gate_override", target: `training-run:${run.id}`, data: { dataset: dataset.repoId, reason: input.gateOverride!.reason, failures: gate.failures } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "training.run.start", target: `training-run:${run.id}`, data: { name, dataset: dataset.repoId, target: target.name, policy: input.policyType, steps: input.steps } });
    return { runId: run.id, jobId };
  });
}

/**
 * A run whose job was ended without it (its worker died under it on every attempt): lost,
 * saying why, so it can be resumed or retried rather than shown training for ever.
 */
export async function endRunOfJob(tx: Tx, jobId: string, reason: string): Promise<void> {
  await tx.trainingRun.updateMany({
    where: { jobId, status: { notIn: [...FINAL_STATUSES] } },
    data: { status: "lost", error: `${reason}. Gantry stopped following this run: its process may still be training on the host, so look there before you resume or retry it`, finishedAt: new Date() },
  });
}

/** Cancels a run: its job stops the process group on the host (TERM, grace, KILL). */
export async function cancelRun(db: Db, { actor, runId }: { actor: OrgActor; runId: string }): Promise<{ runId: string }> {
  const r = await findRun(db, actor.orgId, runId);
  // A lost run's process may still be training on its host: a job goes there and stops it.
  if (r.status === "lost" && r.runDir) {
    await db.$transaction(async (tx) => {
      const { jobId } = await enqueue(trainingRunJob, { runId }, { tx, orgId: actor.orgId, createdById: actor.userId });
      await tx.trainingRun.update({ where: { id: runId }, data: { cancelRequestedAt: new Date(), jobId } });
      await recordAudit(tx, { orgId: actor.orgId, actor, action: "training.run.cancel", target: `training-run:${runId}`, data: { name: r.name, lost: true } });
    });
    return { runId };
  }
  if ((FINAL_STATUSES as string[]).includes(r.status)) throw new AppError("CONFLICT", `This run has already ${r.status === "succeeded" ? "finished" : `ended (${r.status})`}; there is nothing to cancel`);
  await db.trainingRun.update({ where: { id: runId }, data: { cancelRequestedAt: new Date() } });
  if (r.jobId) await cancelJob(db, { actor, jobId: r.jobId }).catch((error) => {
    if (!(error instanceof AppError && error.code === "CONFLICT")) throw error;
  });
  // A run whose job never started is simply over.
  await db.trainingRun.updateMany({ where: { id: runId, status: "queued", runDir: null }, data: { status: "cancelled", finishedAt: new Date() } });
  await recordAudit(db, { orgId: actor.orgId, actor, action: "training.run.cancel", target: `training-run:${runId}`, data: { name: r.name } });
  return { runId };
}

/** Resume (same output folder, from checkpoints/last) or retry (a fresh output folder): a new attempt of the same run. */
export async function restartRun(db: Db, { actor, runId, mode }: { actor: OrgActor; runId: string; mode: "resume" | "retry" }): Promise<{ runId: string; jobId: string }> {
  const r = await findRun(db, actor.orgId, runId);
  if (!(["failed", "cancelled", "lost"] as RunStatus[]).includes(r.status as RunStatus)) throw new AppError("CONFLICT", `Only a run that failed, was cancelled or was lost can be ${mode === "resume" ? "resumed" : "retried"}; this one is ${r.status}`);
  if (mode === "resume" && r.lastStep === null) throw new AppError("CONFLICT", "This run saved no checkpoint to resume from; retry it instead");
  const attempt = r.attempt + 1;
  const outputDir = mode === "retry" && r.runDir ? `${r.runDir}/output-${attempt}` : r.outputDir;
  return db.$transaction(async (tx) => {
    const queueSlot = await pickQueueSlot(tx, r.target, runId);
    const { jobId } = await enqueue(trainingRunJob, { runId }, { tx, orgId: actor.orgId, createdById: actor.userId, queue: queueOf(r.targetId, queueSlot) });
    await tx.trainingRun.update({
      where: { id: runId },
      data: { queueSlot, attempt, outputDir, status: "queued", jobId, logOffset: 0, logTruncated: false, exitCode: null, error: null, pid: null, unreachableSince: null, finishedAt: null, cancelRequestedAt: null, slurmJobId: null, slurmState: null, slurmReason: null, transactionId: null, apiStatus: null, finalCheckpointSeenAt: null, ...(mode === "retry" ? { lastStep: null, lastMetrics: Prisma.JsonNull } : {}) },
    });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: mode === "resume" ? "training.run.resume" : "training.run.retry", target: `training-run:${runId}`, data: { name: r.name, attempt } });
    return { runId, jobId };
  });
}
