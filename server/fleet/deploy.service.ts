import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Db } from "../db";
import { env } from "../env";
import { AppError } from "../errors";
import { isInterrupted } from "../jobs/cancellation";
import { silentProgress, type ProgressReporter } from "../jobs/progress";
import type { BlobStore } from "../storage/blob-store";
import { formatBytes } from "../storage/blob-store";
import { quoteShell } from "../ssh/shell-quote";
import { connectSsh, type SshSession } from "../ssh/ssh-client";
import { uploadResumable } from "../ssh/sftp-upload";
import { modelPaths, sha256OfTarget, sshTargetOf } from "./device-probe";
import { advanceRollout } from "./rollouts.service";

// One device's part of a rollout, run as its own job (one at a time per device):
//   1 check free disk   2 upload models/<sha256>.onnx unless there, verify with sha256sum
//   3 swap current_model.onnx atomically (a new link renamed over it)   4 restart   5 health
//   6 when 3–5 fail: swap back to the previous target, restart, check again.
// Every step is written to the target's record before and after it runs, so the record
// tells the truth even when the worker dies half-way.

const LOG_MAX = 20_000;
const DISK_MARGIN_BYTES = 16 * 1024 * 1024;

export interface DeployOptions {
  orgId: string;
  targetId: string;
  blobs: BlobStore;
  progress: ProgressReporter;
  signal?: AbortSignal;
  /** Health check attempts and the pause between them. */
  healthAttempts?: number;
  healthDelayMs?: number;
  restartTimeoutMs?: number;
  healthTimeoutMs?: number;
}

export type DeployOutcome = "succeeded" | "failed" | "rolled_back" | "skipped";

export async function deployToDevice(db: Db, opts: DeployOptions): Promise<{ state: DeployOutcome }> {
  const target = await db.deploymentTarget.findFirst({
    where: { id: opts.targetId, orgId: opts.orgId },
    include: { device: true, modelVersion: { select: { id: true, sha256: true, bytes: true, status: true, number: true, model: { select: { name: true } } } }, deployment: { select: { id: true, status: true } } },
  });
  if (!target) throw new AppError("NOT_FOUND", "That deployment target no longer exists");
  // A run after the end (a worker that died after recording it, or a redelivered entry) only
  // moves the rollout on: it never deploys again, and never turns a failure into a success.
  if (target.state === "succeeded" || target.state === "skipped" || target.state === "pending") {
    await advanceRollout(db, { orgId: opts.orgId, deploymentId: target.deploymentId });
    return { state: target.state === "succeeded" ? "succeeded" : "skipped" };
  }
  if (target.state === "failed" || target.state === "rolled_back") return finish(db, opts, target.deploymentId, target.state, target.error ?? "no reason recorded");
  const { device, modelVersion: version } = target;
  if (!version.sha256 || version.bytes === null) throw new AppError("BAD_REQUEST", `Version ${version.number} of ${version.model.name} has no file yet`);
  const sha256 = version.sha256;
  const bytes = Number(version.bytes);
  const p = modelPaths(device.modelDir, sha256);

  let log = target.log;
  let currentStep = target.step;
  const stepTimes = { ...(target.stepTimes as Record<string, string>) };
  type RecordData = { step?: string; state?: "running" | "succeeded" | "failed" | "rolled_back"; previousTarget?: string | null; previousVersionId?: string | null; rollback?: string; error?: string | null; finishedAt?: Date; startedAt?: Date };
  const record = async (data: RecordData, line?: string, { isJobLogged = false } = {}) => {
    const now = new Date();
    if (line) log = `${log}${now.toISOString().slice(11, 19)} ${line}\n`.slice(-LOG_MAX);
    if (data.step) {
      currentStep = data.step;
      stepTimes[data.step] = now.toISOString();
    }
    // Two tables, written side by side: one round trip's wait, not two.
    await Promise.all([db.deploymentTarget.update({ where: { id: target.id }, data: { ...data, log, ...(data.step ? { stepTimes } : {}) } }), line && !isJobLogged ? opts.progress.log(line) : null]);
  };
  // The step's event is its line in the job's log. It goes first: the record follows the job.
  const step = async (name: string, fraction: number) => {
    await opts.progress.step(name, fraction);
    await record({ step: name }, name, { isJobLogged: true });
  };

  // "running" here means an earlier run stopped half-way (its worker died). Its record says
  // how far it got; the device is checked again rather than trusted.
  const isResumed = target.state === "running";
  const isSwapRecorded = isResumed && target.step !== null && AFTER_SWAP_STEPS.includes(target.step);

  let session: SshSession | null = null;
  // The SSH handshake starts at once, while the records below are written; the first connect
  // takes its outcome. Not tied to the job's signal: a rollback after a cancel uses it too.
  let firstDial: Promise<SshSession> | null = device.pinnedHostKey ? connectSsh(sshTargetOf(device)) : null;
  firstDial?.catch(() => {});
  const connectWith = async (signal: AbortSignal | undefined) => {
    if (session && !session.isClosed) return session;
    if (!device.pinnedHostKey) throw new AppError("BAD_REQUEST", `${device.name} has no pinned host key yet; run Test connection once before deploying to it`);
    const dial = firstDial ?? connectSsh(sshTargetOf(device), { signal });
    firstDial = null;
    session = await dial;
    return session;
  };
  try {
    await Promise.all([
      record({ state: "running", startedAt: target.startedAt ?? new Date() }, isResumed ? `Resuming after an interruption at step "${target.step ?? "start"}"` : undefined),
      db.deployment.updateMany({ where: { id: target.deploymentId, status: "scheduled" }, data: { status: "running" } }),
    ]);
  } catch (error) {
    firstDial?.then((s) => s.close(), () => {});
    throw error;
  }
  const connect = () => connectWith(opts.signal);
  // The rollback runs even when the job was cancelled mid-way: a device must not be left half-swapped.
  const runWith =
    (signal: AbortSignal | undefined): Run =>
    async (command, what, timeoutMs = 60_000) => {
      const s = await connectWith(signal);
      const r = await s.exec(command, { timeoutMs, signal });
      if (r.code !== 0) throw new AppError("INTERNAL", `${what} failed on ${device.name} (exit ${r.code ?? r.signal}): ${(r.stderr || r.stdout).trim().slice(-500) || "no output"}`);
      return r.stdout.trim();
    };
  const run = runWith(opts.signal);

  // Once the previous target is recorded the device may hold the new link: from then on any
  // failure goes back to the recorded previous target, never to what the link says now.
  let phase: "before-swap" | "after-swap" = isSwapRecorded ? "after-swap" : "before-swap";
  let previousTarget: string | null = isSwapRecorded ? target.previousTarget : null;
  let failure: string | null = null;
  try {
    try {
      if (isResumed && target.step === "Roll back") {
        // It had failed and was going back when it stopped: finish going back, nothing else.
        failure = target.error ?? "The deployment failed before an interruption";
      } else {
        // Cancelled while no worker held it: go no further (see finishCancelledDeployments).
        opts.signal?.throwIfAborted();
        await deploySteps();
        await db.device.update({ where: { id: device.id }, data: { currentSha256: sha256, currentVersionId: version.id, state: "online", lastSeenAt: new Date(), lastError: null } });
        await record({ state: "succeeded", step: "Done", finishedAt: new Date(), error: null }, `Running version ${version.number} of ${version.model.name}`);
        await opts.progress.step("Done", 1);
      }
    } catch (error) {
      if (!(error instanceof AppError) && !(error instanceof Error)) throw error;
      // Its worker is stopping: leave the record as it stands, as a crash would, for the next
      // run to resume from (after the swap it checks the device and goes on).
      if (isInterrupted(opts.signal)) throw error;
      failure = opts.signal?.aborted ? `Cancelled during step "${currentStep ?? "start"}"` : error.message;
      // After the swap the step becomes "Roll back" at once: a run after a crash goes on going back.
      await record({ error: failure, ...(phase === "after-swap" ? { step: "Roll back" } : {}) }, `Failed: ${failure}`);
      if (phase === "before-swap") {
        // A cancelled upload leaves no part behind (a failed one keeps it, to resume from).
        if (opts.signal?.aborted) await runWith(undefined)(`rm -f ${quoteShell(`${p.file}.part`)}`, "Removing a partial upload").catch(() => {});
        await record({ state: "failed", finishedAt: new Date() }, opts.signal?.aborted ? "Nothing on the device was changed" : undefined);
        return await finish(db, opts, target.deploymentId, "failed", failure);
      }
    }
    if (failure !== null) {
      // 6. Roll back by itself, to the target recorded before the swap.
      await opts.progress.step("Roll back", 0.9);
      const rollback = await rollBackDevice(runWith(undefined), p.dir, previousTarget, device, opts, (line) => record({ step: "Roll back" }, line));
      const isBack = rollback === "succeeded";
      await record({ state: isBack ? "rolled_back" : "failed", rollback, finishedAt: new Date() }, isBack ? "Rolled back to the previous model, healthy again" : `Rollback ${rollback}`);
      await db.device.update({
        where: { id: device.id },
        data: isBack ? { currentSha256: sha256OfTarget(previousTarget), currentVersionId: target.previousVersionId ?? (await versionId(db, opts.orgId, previousTarget)), lastError: failure } : { state: "degraded", lastError: `Rollback ${rollback}` },
      });
      return await finish(db, opts, target.deploymentId, isBack ? "rolled_back" : "failed", failure);
    }
  } finally {
    (session as SshSession | null)?.close();
    // Started but never taken (a path that needed no device).
    (firstDial as Promise<SshSession> | null)?.then((s) => s.close(), () => {});
  }
  // Outside the try: a failure to move the rollout on must not roll a healthy device back.
  return finish(db, opts, target.deploymentId, "succeeded");

  async function deploySteps(): Promise<void> {
    await step("Connect", 0.02);
    await connect();
    // 1. Free disk, unless the file is already there.
    await step("Check free disk", 0.05);
    // One round trip: make the directory, hash a file already there, read the free space and
    // where current_model.onnx points (the swap goes on from it unless it has changed by then).
    const q = { models: quoteShell(p.models), file: quoteShell(p.file), current: quoteShell(p.current) };
    const found = await run(
      `mkdir -p ${q.models} && { if [ -f ${q.file} ]; then echo "sha=$(sha256sum < ${q.file} | cut -d' ' -f1)"; fi; echo "free=$(df -Pk ${q.models} | awk 'NR==2 {print $4}')"; echo "link=$(readlink ${q.current})"; }`,
      "Checking the model directory",
    );
    const linkAtCheck = /^link=(.*)$/m.exec(found)?.[1] || null;
    const isPresent = /^sha=([0-9a-f]{64})$/m.exec(found)?.[1] === sha256;
    if (!isPresent) {
      const free = Number(/^free=(\d+)$/m.exec(found)?.[1]) * 1024;
      if (!Number.isFinite(free)) throw new AppError("INTERNAL", `Could not read the free disk of ${device.name}`);
      await record({}, `Free disk in ${p.models}: ${formatBytes(free)}; the model needs ${formatBytes(bytes)}`);
      if (free < bytes + DISK_MARGIN_BYTES) {
        throw new AppError("BAD_REQUEST", `Not enough free disk on ${device.name}: ${formatBytes(free)} free in ${p.models}, the model needs ${formatBytes(bytes)} and a margin of ${formatBytes(DISK_MARGIN_BYTES)}; free some space and deploy again`);
      }
    }

    // 2. Upload and verify.
    if (isPresent) {
      await step("Upload (already on the device)", 0.5);
    } else {
      await step("Upload", 0.1);
      const local = await localCopy(opts.blobs, sha256);
      let lastReport = 0;
      const release = await uploadSlot(() => record({}, "Waiting for an upload slot"));
      const result = await uploadResumable({
        connect,
        localPath: local,
        remotePath: p.file,
        signal: opts.signal,
        onResume: (offset, attempt) =>
          void record({}, attempt === 1 ? `${formatBytes(offset)} of an earlier run's upload are on the device; going on from there` : `Connection dropped; attempt ${attempt} resumes from ${formatBytes(offset)}`),
        onProgress: (sent, total) => {
          if (Date.now() - lastReport < 500 && sent < total) return;
          lastReport = Date.now();
          void opts.progress.set(0.1 + 0.4 * (sent / total), `Uploaded ${formatBytes(sent)} of ${formatBytes(total)}`);
        },
      }).finally(release);
      await record({}, result.resumedFrom > 0 && result.attempts === 1 ? `Uploaded the last ${formatBytes(result.bytes - result.resumedFrom)} (${formatBytes(result.resumedFrom)} were already on the device)` : `Uploaded ${formatBytes(result.bytes)} in ${result.attempts} attempt(s)`);
      await step("Verify sha256", 0.5);
      const onDevice = await run(`sha256sum < ${quoteShell(p.file)} | cut -d' ' -f1`, "Verifying the upload");
      if (onDevice !== sha256) {
        await run(`rm -f ${quoteShell(p.file)}`, "Removing a damaged upload").catch(() => {});
        throw new AppError("INTERNAL", `The file on ${device.name} has sha256 ${onDevice.slice(0, 12)}…, not ${sha256.slice(0, 12)}…; it was removed, deploy again`);
      }
      await record({}, "sha256 matches the registry");
    }

    // 3. Swap.
    await opts.progress.step("Swap", 0.6);
    // The previous target is recorded (with the step, in one write) before the swap, so a swap
    // whose answer is lost — the connection or the worker gone after the rename — still knows
    // where to go back to.
    const recordPrevious = async (current: string | null) => {
      previousTarget = current;
      const previousVersion = await db.modelVersion.findFirst({ where: { orgId: opts.orgId, sha256: sha256OfTarget(previousTarget) ?? "-" }, select: { id: true } });
      await record({ step: "Swap", previousTarget, previousVersionId: previousVersion?.id ?? null }, `Swap: the previous model is ${previousTarget ?? "none"}`);
      phase = "after-swap";
    };
    if (phase === "after-swap") {
      // The previous target was recorded before an interrupted swap; the link may already be the new one.
      const current = (await run(`readlink ${quoteShell(p.current)} || true`, "Reading the current model")) || null;
      await record({ step: "Swap" }, `Swap: current_model.onnx → ${current ?? "nothing"}; the previous model, recorded before the interruption: ${previousTarget ?? "none"}`);
      await swapLink(run, p.dir, p.linkValue);
    } else {
      // The link as the disk check read it, swapped only if it still points there (no second
      // round trip to read it again); if someone changed it meanwhile, it is read and recorded afresh.
      await recordPrevious(linkAtCheck);
      if (!(await swapLink(run, p.dir, p.linkValue, { ifPointsAt: linkAtCheck }))) {
        await recordPrevious((await run(`readlink ${quoteShell(p.current)} || true`, "Reading the current model")) || null);
        await swapLink(run, p.dir, p.linkValue);
      }
    }
    await record({}, `current_model.onnx → ${p.linkValue}`);

    // 4. Restart, 5. health.
    await step("Restart", 0.7);
    await run(device.restartCommand, "Restarting the policy service", opts.restartTimeoutMs ?? 60_000);
    await step("Health check", 0.85);
    await checkHealth(run, device.healthCommand, opts, (line) => record({}, line));
  }
}

/** Steps recorded only after the previous target was: the device may hold the new link. */
const AFTER_SWAP_STEPS = ["Swap", "Restart", "Health check", "Roll back"];

/**
 * A device job cancelled while no worker held it (its worker had died mid-deploy) is never run
 * again, so the cancel never reached the device, and its target still says "running". This
 * finishes the cancel as the job would have: nothing to undo before the swap (a partial upload
 * is removed), back to the previous target recorded before it after. Runs from the health
 * schedule, before settleStrandedTargets.
 */
export async function finishCancelledDeployments(db: Db, { blobs }: { blobs: BlobStore }): Promise<number> {
  const running = await db.deploymentTarget.findMany({ where: { state: "running", jobId: { not: null } }, select: { id: true, orgId: true, jobId: true }, take: 100 });
  if (running.length === 0) return 0;
  const cancelled = new Set((await db.job.findMany({ where: { id: { in: running.map((t) => t.jobId!) }, status: "cancelled" }, select: { id: true } })).map((j) => j.id));
  let finished = 0;
  for (const t of running.filter((t) => cancelled.has(t.jobId!))) {
    // It ends failed or rolled back, which deployToDevice reports by throwing; the record says which.
    await deployToDevice(db, { orgId: t.orgId, targetId: t.id, blobs, progress: silentProgress, signal: AbortSignal.abort(new Error("Cancelled")) }).catch(() => {});
    finished++;
  }
  return finished;
}

async function versionId(db: Db, orgId: string, target: string | null): Promise<string | null> {
  const sha = sha256OfTarget(target);
  if (!sha) return null;
  return (await db.modelVersion.findFirst({ where: { orgId, sha256: sha }, select: { id: true } }))?.id ?? null;
}

type Run = (command: string, what: string, timeoutMs?: number) => Promise<string>;

const LINK_MOVED = "gantry: current_model.onnx has moved";

/**
 * A new link under a temporary name, renamed over current_model.onnx: never a moment without
 * one. With `ifPointsAt`, only when the link still points there (null: no link); answers
 * whether it swapped.
 */
async function swapLink(run: Run, dir: string, linkValue: string, { ifPointsAt }: { ifPointsAt?: string | null } = {}): Promise<boolean> {
  const temp = `.current_model.onnx.${crypto.randomBytes(4).toString("hex")}`;
  const guard = ifPointsAt === undefined ? "" : `if [ "$(readlink current_model.onnx)" != ${quoteShell(ifPointsAt ?? "")} ]; then echo ${quoteShell(LINK_MOVED)}; exit 0; fi; `;
  const out = await run(`cd ${quoteShell(dir)} && ${guard}ln -sfn ${quoteShell(linkValue)} ${quoteShell(temp)} && mv -T ${quoteShell(temp)} current_model.onnx`, "Swapping current_model.onnx");
  return out !== LINK_MOVED;
}

async function checkHealth(run: Run, command: string, opts: DeployOptions, log: (line: string) => Promise<void>): Promise<void> {
  const attempts = opts.healthAttempts ?? 3;
  let last: unknown;
  for (let i = 1; i <= attempts; i++) {
    try {
      await run(command, "The health check", opts.healthTimeoutMs ?? 30_000);
      await log(`Health check passed (attempt ${i} of ${attempts})`);
      return;
    } catch (error) {
      last = error;
      await log(`Health check attempt ${i} of ${attempts}: ${(error as Error).message}`);
      if (i < attempts) await new Promise((r) => setTimeout(r, opts.healthDelayMs ?? 2000));
    }
  }
  throw last;
}

async function rollBackDevice(run: Run, dir: string, previousTarget: string | null, device: { restartCommand: string; healthCommand: string }, opts: DeployOptions, log: (line: string) => Promise<void>): Promise<string> {
  try {
    if (previousTarget) {
      await swapLink(run, dir, previousTarget);
      await log(`current_model.onnx → ${previousTarget}`);
    } else {
      // There was no model before: going back means no link, as it was.
      await run(`rm -f ${quoteShell(path.posix.join(dir, "current_model.onnx"))}`, "Removing current_model.onnx");
      await log("There was no model before; current_model.onnx removed");
    }
    await run(device.restartCommand, "Restarting the policy service", opts.restartTimeoutMs ?? 60_000);
    await log("Restarted");
    if (previousTarget) await checkHealth(run, device.healthCommand, opts, log);
    return "succeeded";
  } catch (error) {
    return `failed: ${(error as Error).message}`;
  }
}

async function finish(db: Db, opts: DeployOptions, deploymentId: string, state: DeployOutcome, error?: string): Promise<{ state: DeployOutcome }> {
  await advanceRollout(db, { orgId: opts.orgId, deploymentId });
  // Not INTERNAL: the outcome is final and recorded, so the queue must not try again (a second
  // attempt after a failed health check would undo the rollback that already happened).
  if (state === "failed" || state === "rolled_back") throw new AppError("CONFLICT", state === "rolled_back" ? `Rolled back: ${error}` : error ?? "Failed");
  return { state };
}

// Encrypting SFTP traffic costs this process CPU, about a core per 100 MB/s. A device's own link
// (100 Mbit/s on a LAN or good Wi-Fi, less over Wi-Fi at a distance) holds its upload far below
// that, so several per core run at their links' speed side by side: four per core keep the
// cores busy at 100 Mbit/s. On a network fast enough to be CPU-bound, more at once would only
// share the same CPU and finish later all together, so the rest wait their turn.
const UPLOAD_SLOTS = 4 * os.availableParallelism();
let uploadsRunning = 0;
const uploadQueue: (() => void)[] = [];

async function uploadSlot(onWait: () => Promise<void>): Promise<() => void> {
  if (uploadsRunning >= UPLOAD_SLOTS) {
    await onWait();
    await new Promise<void>((resolve) => uploadQueue.push(resolve));
  } else uploadsRunning++;
  let isReleased = false;
  return () => {
    if (isReleased) return;
    isReleased = true;
    const next = uploadQueue.shift();
    if (next) next();
    else uploadsRunning--;
  };
}

const copies = new Map<string, Promise<string>>();

/**
 * The model file on local disk (SFTP resumes need random access): the blob store's own file
 * when it keeps one here, otherwise copied once from the store.
 */
function localCopy(blobs: BlobStore, sha256: string): Promise<string> {
  // Every device of a rollout wants the same file at the same moment: one copy serves them all.
  let copy = copies.get(sha256);
  if (!copy) {
    copy = copyOnce(blobs, sha256).finally(() => copies.delete(sha256));
    copies.set(sha256, copy);
  }
  return copy;
}

async function copyOnce(blobs: BlobStore, sha256: string): Promise<string> {
  // Its name is its digest, checked when it was stored: read in place, neither copied nor hashed again.
  const inPlace = await blobs.localPath?.(sha256);
  if (inPlace) return inPlace;
  const dir = path.join(env().GANTRY_HOME, "fleet-cache");
  const file = path.join(dir, `${sha256}.onnx`);
  const expected = (await blobs.stat(sha256))?.bytes;
  if (expected === undefined) throw new AppError("NOT_FOUND", `The model file ${sha256.slice(0, 12)}… is missing from the blob store`);
  const existing = await fs.promises.stat(file).catch(() => null);
  if (existing?.size === expected) return file;
  await fs.promises.mkdir(dir, { recursive: true });
  const temp = `${file}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
  const hash = crypto.createHash("sha256");
  await pipeline(await blobs.get(sha256), async function* (source) {
    for await (const chunk of source) {
      hash.update(chunk as Buffer);
      yield chunk;
    }
  }, fs.createWriteStream(temp));
  if (hash.digest("hex") !== sha256) {
    await fs.promises.rm(temp, { force: true });
    throw new AppError("INTERNAL", `The blob store's copy of ${sha256.slice(0, 12)}… is damaged`);
  }
  await fs.promises.rename(temp, file);
  return file;
}
