import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Db } from "../db";
import { AppError, isAppError } from "../errors";
import type { ProgressReporter } from "../jobs/progress";
import type { BlobStore } from "../storage/blob-store";
import type { SshSession } from "../ssh/ssh-client";
import { quoteShell } from "../ssh/shell-quote";
import { renderCommand } from "./command";
import { connectTrainingHost, run } from "./host";
import { bringCheckpointHome, loadRun, noteNoAnswer, RunEnded, runFolderOf, setStatus, syncRunDataset, withRunSession, type HostCtx, type RunRow } from "./run-steps";
import { launchCommand, parsePoll, pollCommand, runPaths, stopCommand, trainScript, unfinishedReason, wrapperScript, type PollResult, type RunPaths } from "./run-host";
import { appendLog, recordGpuSample } from "./run-log";
import { batchScript, describeSlurmState, meaningOfSlurmState } from "./slurm";
import { cancelSlurmJob, hasSlurmJobEnded, judgeSlurmEnd, pollSlurmRun, slurmSettingsOf, SlurmRefused, submitSlurmJob, type SlurmPoll } from "./slurm-run";
import { driveTransactionRun } from "./transactions-driver";
import type { RunStatus } from "./training.schemas";

// The training job: sync → launch → follow → fetch → register. Each step reads where the run
// stands first (in Postgres and in the run's folder on the host), so a worker that died, an
// SSH connection that dropped or a portal restart is followed by a run that re-attaches and
// goes on, never by a second launch or a repeated log line. On a Slurm target the launch is an
// sbatch of the run folder's job.sbatch and the state is Slurm's (see slurm.ts); the folder,
// the log and the checkpoint are read the same way.

export interface DriverSettings {
  DATASETS_DIR: string;
  TRAINING_POLL_MS: number;
  TRAINING_LOST_AFTER_MS: number;
  TRAINING_CANCEL_GRACE_S: number;
  TRAINING_LOG_MAX_BYTES: number;
  TRAINING_API_STUCK_AFTER_MS: number;
  MODEL_MAX_UPLOAD_BYTES: number;
  TRAINING_EXPORT_TIMEOUT_MS: number;
}

export function commandOf(r: RunRow, paths: RunPaths, datasetRoot: string, resumeFrom: boolean): string {
  const values = {
    repo_id: r.dataset.repoId,
    dataset: datasetRoot,
    policy: r.policyType,
    output: paths.outputDir,
    name: r.name,
    steps: String(r.steps),
    save_freq: String(r.saveFreq),
    log_freq: String(r.logFreq),
  };
  const line = renderCommand(r.target.commandTemplate, values, r.extraArgs);
  return resumeFrom ? `${line} --resume=true --config_path=${quoteShell(path.posix.join(paths.outputDir, "checkpoints", "last", "pretrained_model", "train_config.json"))}` : line;
}

export async function driveTrainingRun(db: Db, { runId, settings, blobs, progress, signal }: { runId: string; settings: DriverSettings; blobs: BlobStore; progress: ProgressReporter; signal: AbortSignal }): Promise<{ status: RunStatus }> {
  const r = await loadRun(db, runId);
  if (!r) throw new AppError("NOT_FOUND", "The training run was deleted");
  // Cancel on a lost run: its process, if it still runs on the host, is stopped there.
  if (r.status === "lost" && r.cancelRequestedAt) {
    await progress.step("Stopping the lost run on its host", 0.5);
    await cancelOnHost(db, runId, settings, { note: r.error ? `Cancelled after it was lost: ${r.error}` : null });
    return { status: "cancelled" };
  }
  if (["succeeded", "failed", "cancelled", "lost"].includes(r.status)) return { status: r.status as RunStatus };
  if (r.target.kind === "transactions-api") return driveTransactionRun(db, { runId, settings, blobs, progress, signal });
  // A cancel stops the run on its host; a stopping worker leaves it training, detached, for the next worker.
  const onCancel = () =>
    cancelOnHost(db, runId, settings).catch(async (e: Error) => {
      await setStatus(db, runId, "cancelled", { error: `Cancelled, but stopping it on the host failed: ${e.message}`, finishedAt: new Date() });
    });
  return withRunSession(db, r, { blobs, progress, signal, onCancel }, (ctx) => drive(db, r, { ...ctx, settings }));
}

interface DriveCtx extends HostCtx {
  settings: DriverSettings;
}

async function drive(db: Db, r: RunRow, ctx: DriveCtx): Promise<{ status: RunStatus }> {
  const { connect, settings, progress, signal } = ctx;
  const paths = await runFolderOf(db, r, ctx);

  // 1. Launch, unless this attempt is already running (or ran) on the host.
  const isSlurm = r.target.kind === "slurm";
  if (["queued", "syncing", "launching"].includes(r.status) && !(isSlurm && r.slurmJobId)) {
    const session = await connect();
    const launched = (await run(session, `test -s ${quoteShell(path.posix.join(paths.attemptDir, isSlurm ? "job_id" : "pid"))} && echo yes || echo no`, { what: "Looking for the run on the host", signal })).trim() === "yes";
    if (isSlurm) await submit(db, r, paths, ctx, { launched });
    else if (!launched) {
      const synced = await syncRunDataset(db, r, paths, settings, ctx);
      await progress.step("Launching on the host", 0.2);
      const command = commandOf(r, paths, synced.remoteRoot, r.attempt > 1 && r.outputDir === paths.outputDir && (await hasCheckpoint(session, paths, signal)));
      await run(session, launchCommand(paths, { train: trainScript({ activate: r.target.activate, command }), wrapper: wrapperScript() }), { what: "Starting the run", signal });
    }
    if (!isSlurm) await setStatus(db, r.id, "running", { logOffset: launched ? undefined : 0 });
  }

  // 2. Follow: the log by byte offset, the state, GPU samples, until the run ends.
  await progress.step("Training", 0.22);
  const end = await follow(db, r, paths, ctx);

  // 3. The outcome, honestly: exit 0 and the last checkpoint at the final step.
  if (end.kind === "lost") {
    await setStatus(db, r.id, "lost", { error: end.reason, finishedAt: new Date(), pid: null });
    throw new RunEnded(end.reason);
  }
  const { poll } = end;
  if ("slurm" in poll) {
    const jobId = (await db.trainingRun.findUniqueOrThrow({ where: { id: r.id }, select: { slurmJobId: true } })).slurmJobId!;
    const judged = judgeSlurmEnd({ jobId, slurm: poll.slurm, exitFile: poll.exitCode, usr1At: poll.usr1At, checkpointStep: poll.checkpointStep, steps: r.steps, tail: await lastLines(db, r.id, r.attempt) });
    if (judged.status !== "succeeded") {
      await setStatus(db, r.id, judged.status, { exitCode: judged.exitCode, error: judged.reason, finishedAt: new Date() });
      throw new RunEnded(judged.reason!);
    }
  } else if (poll.exitCode !== 0) {
    const tail = await lastLines(db, r.id, r.attempt);
    const reason = `Training exited with code ${poll.exitCode}${tail ? `; the log ends:\n${tail}` : ""}`;
    await setStatus(db, r.id, "failed", { exitCode: poll.exitCode, error: reason, finishedAt: new Date() });
    throw new RunEnded(reason);
  } else if (poll.checkpointStep !== r.steps) {
    const reason = unfinishedReason(poll.checkpointStep, r.steps);
    await setStatus(db, r.id, "failed", { exitCode: 0, error: reason, finishedAt: new Date(), lastStep: poll.checkpointStep ?? undefined });
    throw new RunEnded(reason);
  }

  // 4. The checkpoint comes home and is registered.
  await setStatus(db, r.id, "fetching", { exitCode: 0, lastStep: r.steps });
  return bringCheckpointHome(db, r, paths.outputDir, ctx, settings);
}

/** Syncs and submits the attempt's Slurm job, or adopts the one it already has, and records its id. */
async function submit(db: Db, r: RunRow, paths: RunPaths, ctx: DriveCtx, { launched }: { launched: boolean }): Promise<void> {
  const { connect, settings, progress, signal } = ctx;
  const session = await connect();
  let scripts = { train: "", batch: "" };
  if (!launched) {
    const synced = await syncRunDataset(db, r, paths, settings, ctx);
    await progress.step("Submitting to Slurm", 0.2);
    const command = commandOf(r, paths, synced.remoteRoot, r.attempt > 1 && r.outputDir === paths.outputDir && (await hasCheckpoint(session, paths, signal)));
    scripts = { train: trainScript({ activate: r.target.activate, command }), batch: batchScript(paths, slurmSettingsOf(r.target.slurm)) };
  }
  let jobId: string;
  try {
    jobId = await submitSlurmJob(session, paths, scripts, signal);
  } catch (error) {
    if (!(error instanceof SlurmRefused)) throw error;
    await setStatus(db, r.id, "failed", { error: error.message, finishedAt: new Date() });
    throw new RunEnded(error.message);
  }
  await setStatus(db, r.id, "queued", { slurmJobId: jobId, slurmState: "PENDING", slurmReason: null, ...(launched ? {} : { logOffset: 0 }) });
  await progress.log(`Submitted to Slurm as job ${jobId}`);
}

async function hasCheckpoint(session: SshSession, paths: RunPaths, signal: AbortSignal): Promise<boolean> {
  const out = await run(session, `test -e ${quoteShell(path.posix.join(paths.outputDir, "checkpoints", "last", "pretrained_model", "train_config.json"))} && echo yes || echo no`, { what: "Looking for a checkpoint", signal });
  return out.trim() === "yes";
}

async function lastLines(db: Db, runId: string, attempt: number): Promise<string> {
  const chunks = await db.trainingLogChunk.findMany({ where: { runId, attempt }, orderBy: { offset: "desc" }, take: 5 });
  const text = chunks.reverse().map((c) => c.text).join("");
  return text.split(/\r?\n|\r/).filter((l) => l.trim()).slice(-8).join("\n");
}

type FollowEnd = { kind: "ended"; poll: PollResult | SlurmPoll } | { kind: "lost"; reason: string };

async function follow(db: Db, r: RunRow, paths: RunPaths, ctx: DriveCtx): Promise<FollowEnd> {
  const { settings, progress, signal } = ctx;
  let lastGpuAt = 0;
  let delay = settings.TRAINING_POLL_MS;
  for (;;) {
    signal.throwIfAborted();
    const state = await db.trainingRun.findUniqueOrThrow({ where: { id: r.id }, select: { logOffset: true, logTruncated: true, unreachableSince: true, status: true, lastStep: true, slurmJobId: true, slurmState: true, slurmReason: true, hostCheckpoints: true } });
    let poll: PollResult | SlurmPoll;
    try {
      const session = await ctx.connect();
      if (state.slurmJobId) poll = await pollSlurmRun(session, paths, state.slurmJobId, Number(state.logOffset), signal);
      else {
        const result = await session.exec(pollCommand(paths, Number(state.logOffset)), { timeoutMs: 60_000, signal, maxBytes: 2 * 1024 * 1024 });
        if (result.code !== 0) throw new AppError("INTERNAL", `Reading the run's state failed (exit ${result.code}): ${result.stderr.trim().slice(0, 300)}`);
        poll = parsePoll(result.stdout);
      }
    } catch (error) {
      if (signal.aborted) throw error;
      if (isAppError(error) && error.code === "CONFLICT") throw error; // a changed host key: never re-attach blindly
      ctx.dropSession();
      const lost = await noteNoAnswer(db, r, { unreachableSince: state.unreachableSince, error, lostAfterMs: settings.TRAINING_LOST_AFTER_MS, progress, goesOn: "training goes on there if the host is up", lostHint: ". If the host comes back and the run finished, start it again with Resume" });
      if (lost) return { kind: "lost", reason: lost };
      delay = Math.min(delay * 2, 10_000);
      await sleep(delay, undefined, { signal });
      continue;
    }
    delay = settings.TRAINING_POLL_MS;
    const slurm = "slurm" in poll && poll.slurm.state ? { state: poll.slurm.state, reason: poll.slurm.reason } : null;
    const wanted: RunStatus = slurm && meaningOfSlurmState(slurm.state).phase === "queued" ? "queued" : "running";
    const isSlurmNews = !!slurm && (slurm.state !== state.slurmState || slurm.reason !== state.slurmReason);
    if (state.unreachableSince || state.status !== wanted || isSlurmNews) {
      await setStatus(db, r.id, wanted, { unreachableSince: null, ...(slurm ? { slurmState: slurm.state, slurmReason: slurm.reason } : {}) });
      if (state.unreachableSince) await progress.log(`${r.target.name} answers again; following the run`);
      if (slurm && isSlurmNews) await progress.log(`Slurm job ${state.slurmJobId}: ${slurm.state}${slurm.reason ? ` (${slurm.reason})` : ""} — ${describeSlurmState({ state: slurm.state, reason: null })}`);
    }
    if (poll.isMissing) return { kind: "lost", reason: `The run's folder ${paths.attemptDir} is gone from ${r.target.name}` };
    if (poll.checkpointSteps.join() !== state.hostCheckpoints.join()) await db.trainingRun.update({ where: { id: r.id }, data: { hostCheckpoints: poll.checkpointSteps } });

    const isDone = "slurm" in poll ? hasSlurmJobEnded(poll.slurm) : !poll.isAlive;
    const stored = await appendLog(db, { run: r, attempt: r.attempt, offset: Number(state.logOffset), bytes: poll.log, logSize: poll.logSize, isFinal: isDone && poll.log.length >= poll.logSize - Number(state.logOffset), maxBytes: settings.TRAINING_LOG_MAX_BYTES, truncated: state.logTruncated, lastStep: state.lastStep });
    if (stored.lastStep !== null && stored.lastStep !== state.lastStep) await progress.set(0.22 + 0.66 * Math.min(1, stored.lastStep / r.steps), `Step ${stored.lastStep} of ${r.steps}`);
    if (poll.gpu && Date.now() - lastGpuAt > 10_000) {
      lastGpuAt = Date.now();
      await recordGpuSample(db, r.id, stored.lastStep ?? state.lastStep ?? 0, poll.gpu);
    }
    // More of the log to read: go on at once.
    if (stored.hasMore) continue;
    if (isDone) {
      if ("slurm" in poll || poll.exitCode !== null) return { kind: "ended", poll };
      if (poll.runBootId && poll.bootId && poll.runBootId !== poll.bootId) return { kind: "lost", reason: `${r.target.name} restarted while the run was training (its boot id changed), and the run left no exit code` };
      return { kind: "lost", reason: `The run's process on ${r.target.name} is gone and left no exit code: it was killed outright (out of memory, kill -9) or the host restarted` };
    }
    await sleep(delay, undefined, { signal });
  }
}

/** Stops the run on its host: TERM to its process group, the grace period, then KILL; on Slurm, scancel. */
export async function cancelOnHost(db: Db, runId: string, settings: Pick<DriverSettings, "TRAINING_CANCEL_GRACE_S">, { note = null }: { note?: string | null } = {}): Promise<void> {
  const r = await loadRun(db, runId);
  if (!r) return;
  let slurmState: string | null = null;
  if (r.runDir) {
    const paths = runPaths(path.posix.dirname(path.posix.dirname(r.runDir)), r.id, r.attempt, r.outputDir);
    const session = await connectTrainingHost(r.target);
    try {
      if (r.target.kind === "slurm") {
        // Slurm sends TERM to the job's processes and KILL after its KillWait; wait for its record of the end.
        slurmState = (await cancelSlurmJob(session, paths, r.slurmJobId, { waitMs: (settings.TRAINING_CANCEL_GRACE_S + 60) * 1000 })).state;
      } else {
        const poll = parsePoll((await session.exec(pollCommand(paths, 0, 0), { timeoutMs: 30_000 })).stdout);
        if (poll.isAlive && poll.pid) {
          const out = await session.exec(stopCommand(poll.pid, settings.TRAINING_CANCEL_GRACE_S), { timeoutMs: (settings.TRAINING_CANCEL_GRACE_S + 30) * 1000 });
          const left = /left:(.*)/.exec(out.stdout)?.[1].trim();
          if (left) throw new AppError("INTERNAL", `Processes ${left} of the run are still running on ${r.target.name} after KILL`);
        }
      }
    } finally {
      session.close();
    }
  }
  await setStatus(db, runId, "cancelled", { finishedAt: new Date(), error: note, ...(slurmState ? { slurmState, slurmReason: null } : {}) });
}

