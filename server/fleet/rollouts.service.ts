import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError, isAppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { raiseAlert } from "../alerts/alerts.service";
import { deployDeviceJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import { cancelJob } from "../jobs/jobs.service";
import { Prisma } from "../generated/prisma/client";
import type {
  createRolloutInput,
  rollbackDeviceInput,
  rollbackRolloutInput,
  rolloutDetailSchema,
  rolloutSummarySchema,
  Selector,
  Strategy,
} from "./fleet.schemas";

// Rollouts: a version, the devices it goes to, and a strategy. Each device runs its own job
// on a queue of its own (so two deployments to one device never overlap); phases start one
// after another — the canary, then batches — and a rollout stops starting phases once its
// failures pass the strategy's threshold. advanceRollout is the one place that moves a
// rollout on; it runs when the rollout is made and each time a device finishes.

type Summary = z.infer<typeof rolloutSummarySchema>;

/** The per-device queue: graphile-worker runs one job of a queue at a time. */
export const deviceQueue = (deviceId: string) => `fleet-device:${deviceId}`;

async function readyVersion(tx: Tx, orgId: string, modelVersionId: string) {
  const v = await tx.modelVersion.findFirst({ where: { id: modelVersionId, orgId }, select: { id: true, status: true, kind: true, sha256: true, number: true, model: { select: { name: true } } } });
  if (!v) throw new AppError("NOT_FOUND", "That model version does not exist in this organisation");
  if (v.kind !== "onnx") throw new AppError("CONFLICT", `Version ${v.number} of ${v.model.name} is a LeRobot checkpoint, not an ONNX model; export it to ONNX and add that as a version to serve or deploy it`);
  if (v.status !== "ready" || !v.sha256) throw new AppError("BAD_REQUEST", `Version ${v.number} of ${v.model.name} is ${v.status}; only a ready version can be rolled out`);
  return v;
}

async function selectDevices(tx: Tx, orgId: string, selector: Selector): Promise<{ id: string; name: string }[]> {
  const where: Prisma.DeviceWhereInput =
    "deviceIds" in selector ? { id: { in: selector.deviceIds } } : "group" in selector ? { group: selector.group } : { tags: { has: selector.tag } };
  const devices = await tx.device.findMany({ where: { orgId, ...where }, orderBy: { name: "asc" }, select: { id: true, name: true } });
  if ("deviceIds" in selector && devices.length !== new Set(selector.deviceIds).size) throw new AppError("NOT_FOUND", "Some of the chosen devices do not exist in this organisation");
  if (devices.length === 0) throw new AppError("BAD_REQUEST", "No device matches; choose devices, a group or a tag that has devices");
  return devices;
}

/** Phase of each device in order: all in phase 0, or the canary then batches. */
export function planPhases(count: number, strategy: Strategy): number[] {
  if (strategy.kind === "all") return Array.from({ length: count }, () => 0);
  return Array.from({ length: count }, (_, i) => (i < strategy.canary ? 0 : 1 + Math.floor((i - strategy.canary) / strategy.batchSize)));
}

export async function createRollout(db: Db, { actor, input }: { actor: OrgActor; input: z.infer<typeof createRolloutInput> }): Promise<{ id: string }> {
  const id = await db.$transaction(async (tx) => {
    const version = await readyVersion(tx, actor.orgId, input.modelVersionId);
    const devices = await selectDevices(tx, actor.orgId, input.selector);
    const phases = planPhases(devices.length, input.strategy);
    const startAt = input.startAt && input.startAt.getTime() > Date.now() ? input.startAt : null;
    const deployment = await tx.deployment.create({
      data: {
        orgId: actor.orgId,
        modelVersionId: version.id,
        strategy: input.strategy as object,
        selector: input.selector as object,
        startAt,
        createdById: actor.userId,
        targets: { create: devices.map((d, i) => ({ orgId: actor.orgId, deviceId: d.id, modelVersionId: version.id, phase: phases[i] })) },
      },
      select: { id: true },
    });
    await recordAudit(tx, {
      orgId: actor.orgId,
      actor,
      action: "rollout.create",
      target: `deployment:${deployment.id}`,
      data: { version: `${version.model.name} v${version.number}`, devices: devices.map((d) => d.name), strategy: input.strategy, startAt: startAt?.toISOString() ?? null },
    });
    await advanceIn(tx, actor.orgId, deployment.id, actor.userId);
    return deployment.id;
  });
  return { id };
}

/** Rolls a whole rollout back: each device to what it ran before it, or all to one chosen version. */
export async function rollbackRollout(db: Db, { actor, input }: { actor: OrgActor; input: z.infer<typeof rollbackRolloutInput> }): Promise<{ id: string }> {
  const id = await db.$transaction(async (tx) => {
    const source = await tx.deployment.findFirst({ where: { id: input.deploymentId, orgId: actor.orgId }, include: { targets: { include: { device: { select: { name: true } } } } } });
    if (!source) throw new AppError("NOT_FOUND", "That rollout does not exist in this organisation");
    if (source.targets.some((t) => t.state === "queued" || t.state === "running")) throw new AppError("CONFLICT", "This rollout is still running; wait for it to finish before rolling it back");
    const chosen = input.modelVersionId ? await readyVersion(tx, actor.orgId, input.modelVersionId) : null;
    const plan = source.targets
      .filter((t) => t.state === "succeeded" || t.state === "failed")
      .map((t) => ({ deviceId: t.deviceId, name: t.device.name, versionId: chosen?.id ?? t.previousVersionId }))
      .filter((t): t is { deviceId: string; name: string; versionId: string } => Boolean(t.versionId));
    if (plan.length === 0) throw new AppError("BAD_REQUEST", "No device of this rollout has an earlier registered version to go back to; choose a version");
    for (const versionId of new Set(plan.map((p) => p.versionId))) await readyVersion(tx, actor.orgId, versionId);
    const deployment = await tx.deployment.create({
      data: {
        orgId: actor.orgId,
        kind: "rollback",
        modelVersionId: chosen?.id ?? plan[0].versionId,
        strategy: { kind: "all" },
        selector: { deviceIds: plan.map((p) => p.deviceId) },
        createdById: actor.userId,
        targets: { create: plan.map((p) => ({ orgId: actor.orgId, deviceId: p.deviceId, modelVersionId: p.versionId, phase: 0 })) },
      },
      select: { id: true },
    });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "rollout.rollback", target: `deployment:${source.id}`, data: { rollback: deployment.id, devices: plan.map((p) => p.name), versionId: chosen?.id ?? "previous" } });
    await advanceIn(tx, actor.orgId, deployment.id, actor.userId);
    return deployment.id;
  });
  return { id };
}

/** Sends one device to an earlier version (any ready version of the organisation). */
export async function rollbackDevice(db: Db, { actor, input }: { actor: OrgActor; input: z.infer<typeof rollbackDeviceInput> }): Promise<{ id: string }> {
  const id = await db.$transaction(async (tx) => {
    const device = await tx.device.findFirst({ where: { id: input.deviceId, orgId: actor.orgId }, select: { id: true, name: true } });
    if (!device) throw new AppError("NOT_FOUND", "That device does not exist in this organisation");
    const version = await readyVersion(tx, actor.orgId, input.modelVersionId);
    const deployment = await tx.deployment.create({
      data: {
        orgId: actor.orgId,
        kind: "rollback",
        modelVersionId: version.id,
        strategy: { kind: "all" },
        selector: { deviceIds: [device.id] },
        createdById: actor.userId,
        targets: { create: [{ orgId: actor.orgId, deviceId: device.id, modelVersionId: version.id, phase: 0 }] },
      },
      select: { id: true },
    });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "device.rollback", target: `device:${device.id}`, data: { name: device.name, version: `${version.model.name} v${version.number}`, deployment: deployment.id } });
    await advanceIn(tx, actor.orgId, deployment.id, actor.userId);
    return deployment.id;
  });
  return { id };
}

const NOT_STARTED = "Not started: the rollout was cancelled";

/**
 * Stops a scheduled or running rollout. Devices not started are skipped; running device jobs
 * are cancelled through the jobs service, and each stops as its deployment does on a cancel:
 * before the swap nothing on the device changes, after it the device goes back.
 */
export async function cancelRollout(db: Db, { actor, deploymentId }: { actor: OrgActor; deploymentId: string }): Promise<{ id: string }> {
  const { kind, skipped, active } = await db.$transaction(async (tx) => {
    // The row lock keeps advanceRollout from starting another phase while this runs.
    const [d] = await tx.$queryRaw<{ id: string; status: string; kind: string }[]>`
      SELECT "id", "status"::text AS "status", "kind" FROM "Deployment" WHERE "id" = ${deploymentId}::uuid AND "orgId" = ${actor.orgId}::uuid FOR UPDATE`;
    if (!d) throw new AppError("NOT_FOUND", "That rollout does not exist in this organisation");
    // Who cancelled is on the rollout, in its alert and in the audit log (with a job.cancel entry per running device below).
    if (d.status !== "scheduled" && d.status !== "running") throw new AppError("CONFLICT", `This ${d.kind} has already ${d.status === "succeeded" || d.status === "failed" ? "finished" : `been ${d.status}`}; there is nothing to cancel`);
    const { count } = await tx.deploymentTarget.updateMany({ where: { deploymentId, state: "pending" }, data: { state: "skipped", step: NOT_STARTED, finishedAt: new Date() } });
    const active = await tx.deploymentTarget.findMany({ where: { deploymentId, state: { in: ["queued", "running"] } }, select: { id: true, jobId: true, device: { select: { name: true } } } });
    await tx.deployment.update({ where: { id: deploymentId }, data: { status: "cancelled", error: `Cancelled by ${actor.label}`, finishedAt: new Date() } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "rollout.cancel", target: `deployment:${deploymentId}`, data: { kind: d.kind, skipped: count, stopping: active.map((t) => t.device.name) } });
    return { kind: d.kind, skipped: count, active };
  });
  for (const t of active) {
    if (!t.jobId) continue;
    await cancelJob(db, { actor, jobId: t.jobId }).catch((error) => {
      // The job ended meanwhile: its target is settled by the job, or below.
      if (!(isAppError(error) && error.code === "CONFLICT")) throw error;
    });
  }
  // A job cancelled before it started never touches its target: that device was not started either.
  const jobIds = active.map((t) => t.jobId).filter((id): id is string => id !== null);
  const unstarted = await db.job.findMany({ where: { id: { in: jobIds }, status: "cancelled", startedAt: null }, select: { id: true } });
  const { count: unstartedCount } = await db.deploymentTarget.updateMany({
    where: { deploymentId, state: "queued", jobId: { in: unstarted.map((j) => j.id) } },
    data: { state: "skipped", step: NOT_STARTED, finishedAt: new Date() },
  });
  const stopping = active.length - unstartedCount;
  await raiseAlert(db, {
    orgId: actor.orgId,
    kind: "rollout.cancelled",
    severity: "warning",
    title: `A ${kind} was cancelled`,
    message: `${actor.label} cancelled it: ${skipped + unstartedCount} device(s) not started were skipped${stopping ? `, ${stopping} running were stopped (a device already swapped goes back to its previous model)` : ""}`,
    target: `deployment:${deploymentId}`,
  });
  return { id: deploymentId };
}

/** Moves a rollout on after a device finished (its own transaction, the rollout's row locked). */
export async function advanceRollout(db: Db, { orgId, deploymentId }: { orgId: string; deploymentId: string }): Promise<void> {
  const alert = await db.$transaction((tx) => advanceIn(tx, orgId, deploymentId, null));
  if (alert) await raiseAlert(db, alert);
}

type AlertArgs = Parameters<typeof raiseAlert>[1];

async function advanceIn(tx: Tx, orgId: string, deploymentId: string, userId: string | null): Promise<AlertArgs | null> {
  const [deployment] = await tx.$queryRaw<{ id: string; status: string; startAt: Date | null; strategy: Strategy; kind: string }[]>`
    SELECT "id", "status"::text AS "status", "startAt", "strategy", "kind" FROM "Deployment" WHERE "id" = ${deploymentId}::uuid AND "orgId" = ${orgId}::uuid FOR UPDATE`;
  if (!deployment || ["succeeded", "failed", "aborted", "cancelled"].includes(deployment.status)) return null;
  const targets = await tx.deploymentTarget.findMany({ where: { deploymentId }, select: { id: true, deviceId: true, phase: true, state: true, device: { select: { name: true } } } });
  if (targets.some((t) => t.state === "queued" || t.state === "running")) return null;
  const finished = targets.filter((t) => t.state !== "pending");
  const failed = finished.filter((t) => t.state === "failed" || t.state === "rolled_back");
  const pending = targets.filter((t) => t.state === "pending");
  const strategy = deployment.strategy;
  const failurePercent = finished.length ? (100 * failed.length) / finished.length : 0;
  const threshold = strategy.kind === "canary" ? strategy.maxFailurePercent : 0;

  if (pending.length && failed.length && failurePercent > threshold) {
    const reason = `Stopped: ${failed.length} of ${finished.length} devices failed (${Math.round(failurePercent)}%, more than the ${threshold}% allowed); ${pending.length} not started`;
    await tx.deploymentTarget.updateMany({ where: { deploymentId, state: "pending" }, data: { state: "skipped", step: "Not started", finishedAt: new Date() } });
    await tx.deployment.update({ where: { id: deploymentId }, data: { status: "aborted", error: reason, finishedAt: new Date() } });
    return { orgId, kind: "rollout.failed", severity: "critical", title: `A ${deployment.kind} was stopped`, message: `${reason}. Failed: ${failed.map((t) => t.device.name).join(", ")}`, target: `deployment:${deploymentId}` };
  }
  if (pending.length) {
    const phase = Math.min(...pending.map((t) => t.phase));
    const runAt = deployment.startAt && deployment.startAt.getTime() > Date.now() ? deployment.startAt : undefined;
    const queued: { id: string; jobId: string }[] = [];
    for (const t of pending.filter((t) => t.phase === phase)) {
      const { jobId } = await enqueue(deployDeviceJob, { targetId: t.id }, { tx, orgId, createdById: userId, queue: deviceQueue(t.deviceId), runAt });
      queued.push({ id: t.id, jobId });
    }
    // One statement for the phase's targets (the transaction holds the rollout's lock meanwhile).
    await tx.$executeRaw`
      UPDATE "DeploymentTarget" AS t SET "state" = 'queued', "jobId" = q."jobId", "step" = ${runAt ? `Starts ${runAt.toISOString()}` : "Queued"}
      FROM unnest(${queued.map((q) => q.id)}::uuid[], ${queued.map((q) => q.jobId)}::uuid[]) AS q("id", "jobId")
      WHERE t."id" = q."id"`;
    if (!runAt) await tx.deployment.updateMany({ where: { id: deploymentId, status: "scheduled" }, data: { status: "running" } });
    return null;
  }
  const isFailed = failed.length > 0;
  await tx.deployment.update({
    where: { id: deploymentId },
    data: { status: isFailed ? "failed" : "succeeded", finishedAt: new Date(), error: isFailed ? `${failed.length} of ${targets.length} devices failed: ${failed.map((t) => t.device.name).join(", ")}` : null },
  });
  if (!isFailed) return null;
  return {
    orgId,
    kind: "rollout.failed",
    severity: "warning",
    title: `A ${deployment.kind} finished with failures`,
    message: `${failed.length} of ${targets.length} devices failed: ${failed.map((t) => `${t.device.name} (${t.state === "rolled_back" ? "rolled back" : "failed"})`).join(", ")}`,
    target: `deployment:${deploymentId}`,
  };
}

const summaryInclude = {
  modelVersion: { select: { id: true, modelId: true, number: true, model: { select: { name: true } } } },
  targets: { select: { state: true } },
} satisfies Prisma.DeploymentInclude;

function toSummary(d: Prisma.DeploymentGetPayload<{ include: typeof summaryInclude }>): Summary {
  const counts: Summary["counts"] = {};
  for (const t of d.targets) counts[t.state] = (counts[t.state] ?? 0) + 1;
  return {
    id: d.id,
    kind: d.kind,
    status: d.status,
    version: { id: d.modelVersion.id, modelId: d.modelVersion.modelId, modelName: d.modelVersion.model.name, number: d.modelVersion.number },
    strategy: d.strategy as Strategy,
    selector: d.selector as Selector,
    startAt: d.startAt,
    error: d.error,
    createdAt: d.createdAt,
    finishedAt: d.finishedAt,
    counts,
  };
}

export async function listRollouts(tx: Tx, { orgId }: { orgId: string }): Promise<Summary[]> {
  const rows = await tx.deployment.findMany({ where: { orgId }, orderBy: { createdAt: "desc" }, take: 100, include: summaryInclude });
  return rows.map(toSummary);
}

export async function getRollout(tx: Tx, { orgId, deploymentId }: { orgId: string; deploymentId: string }): Promise<z.infer<typeof rolloutDetailSchema>> {
  const d = await tx.deployment.findFirst({ where: { id: deploymentId, orgId }, include: summaryInclude });
  if (!d) throw new AppError("NOT_FOUND", "That rollout does not exist in this organisation");
  const targets = await tx.deploymentTarget.findMany({ where: { deploymentId }, orderBy: [{ phase: "asc" }, { device: { name: "asc" } }], include: { device: { select: { name: true } } } });
  return {
    ...toSummary(d),
    targets: targets.map((t) => ({
      id: t.id,
      deviceId: t.deviceId,
      deviceName: t.device.name,
      phase: t.phase,
      state: t.state,
      step: t.step,
      previousTarget: t.previousTarget,
      rollback: t.rollback,
      error: t.error,
      log: t.log,
      jobId: t.jobId,
      startedAt: t.startedAt,
      finishedAt: t.finishedAt,
    })),
  };
}

/**
 * Targets whose job ended without the deployment finishing them — cancelled before it ran,
 * or lost with a worker that died — are marked failed with the job's reason, and their rollout
 * moves on. Run from the health schedule.
 */
export async function settleStrandedTargets(db: Db): Promise<number> {
  const stranded = await db.deploymentTarget.findMany({
    where: { state: { in: ["queued", "running"] }, jobId: { not: null } },
    select: { id: true, orgId: true, deploymentId: true, jobId: true, state: true },
    take: 500,
  });
  if (stranded.length === 0) return 0;
  const jobs = await db.job.findMany({ where: { id: { in: stranded.map((t) => t.jobId!) }, status: { in: ["failed", "cancelled"] } }, select: { id: true, status: true, error: true } });
  let settled = 0;
  for (const job of jobs) {
    const target = stranded.find((t) => t.jobId === job.id)!;
    const reason = job.status === "cancelled" ? "The deployment job was cancelled" : `The deployment job stopped: ${job.error ?? "no reason recorded"}`;
    const { count } = await db.deploymentTarget.updateMany({
      where: { id: target.id, state: target.state },
      data: { state: "failed", error: target.state === "running" ? `${reason}; the device may need Test connection and a new rollout` : reason, finishedAt: new Date() },
    });
    if (count) {
      settled++;
      await advanceRollout(db, { orgId: target.orgId, deploymentId: target.deploymentId });
    }
  }
  return settled;
}
