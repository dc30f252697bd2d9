import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Db } from "../db";
import { AppError, isAppError } from "../errors";
import type { ProgressReporter } from "../jobs/progress";
import type { BlobStore } from "../storage/blob-store";
import type { SshSession } from "../ssh/ssh-client";
import { quoteShell } from "../ssh/shell-quote";
import { run } from "./host";
import { bringCheckpointHome, loadRun, noteNoAnswer, RunEnded, runFolderOf, setStatus, syncRunDataset, withRunSession, type HostCtx, type RunRow } from "./run-steps";
import { judgeTransaction, readTransaction, startTransaction, TransactionRefused, type TransactionState } from "./transactions-api";
import { hostPathSchema, type RunStatus } from "./training.schemas";

// A run on a transactions-api target: the dataset goes to the model host over SSH, the API is
// asked to train (POST /transactions/start), then followed (GET /transactions/{id}) together
// with the model directory's checkpoints/last over SSH, until the transaction is judged ended
// (see transactions-api.ts); the checkpoint comes home over SSH like any other. A worker that
// stops leaves the transaction to the service; the next one follows the same transaction id.

export interface TransactionDriverSettings {
  DATASETS_DIR: string;
  TRAINING_POLL_MS: number;
  TRAINING_LOST_AFTER_MS: number;
  /** How long the final checkpoint may sit in the folder while the API still says TRAINING. */
  TRAINING_API_STUCK_AFTER_MS: number;
  MODEL_MAX_UPLOAD_BYTES: number;
  TRAINING_EXPORT_TIMEOUT_MS: number;
}

interface Ctx extends HostCtx {
  settings: TransactionDriverSettings;
}

export async function driveTransactionRun(db: Db, { runId, settings, blobs, progress, signal }: { runId: string; settings: TransactionDriverSettings; blobs: BlobStore; progress: ProgressReporter; signal: AbortSignal }): Promise<{ status: RunStatus }> {
  const r = await loadRun(db, runId);
  if (!r) throw new AppError("NOT_FOUND", "The training run was deleted");
  // A stopping worker leaves the transaction to the service, and the next worker follows it; a
  // cancel can only stop Gantry following it.
  const onCancel = async () => {
    const current = await db.trainingRun.findUnique({ where: { id: runId }, select: { transactionId: true } });
    await setStatus(db, runId, "cancelled", {
      finishedAt: new Date(),
      error: current?.transactionId ? `Gantry stopped following transaction ${current.transactionId}. The transactions API has no way to cancel a transaction, so ${r.target.name} may go on training it` : null,
    });
  };
  return withRunSession(db, r, { blobs, progress, signal, onCancel }, (ctx) => drive(db, r, { ...ctx, settings }));
}

async function drive(db: Db, r: RunRow, ctx: Ctx): Promise<{ status: RunStatus }> {
  const { connect, settings, progress, signal } = ctx;
  const paths = await runFolderOf(db, r, ctx);

  // 1. Start the transaction, unless this attempt has one.
  let transactionId = r.transactionId;
  if (!transactionId) {
    const synced = await syncRunDataset(db, r, paths, settings, ctx);
    await progress.step("Starting the transaction", 0.2);
    const resume = r.attempt > 1 && r.outputDir === paths.outputDir && (await checkpointStepOf(await connect(), paths.outputDir, signal)) !== null;
    try {
      transactionId = await startTransaction(r.target, {
        repo_id: r.dataset.repoId, dataset_root: synced.remoteRoot, policy_type: r.policyType, steps: r.steps, save_freq: r.saveFreq, log_freq: r.logFreq,
        output_dir: paths.outputDir, job_name: r.name, extra_args: r.extraArgs, resume, client_ref: paths.marker,
      }, { signal });
    } catch (error) {
      if (!(error instanceof TransactionRefused)) throw error;
      await setStatus(db, r.id, "failed", { error: error.message, finishedAt: new Date() });
      throw new RunEnded(error.message);
    }
    await setStatus(db, r.id, "running", { transactionId, apiStatus: "TRAINING", finalCheckpointSeenAt: null });
    await progress.log(`Started as transaction ${transactionId}`);
  }

  // 2. Follow the API and the model directory until the transaction is judged ended.
  await progress.step("Training", 0.22);
  const modelDir = await follow(db, r, transactionId, paths.outputDir, ctx);

  // 3. The checkpoint comes home and is registered.
  await setStatus(db, r.id, "fetching", { lastStep: r.steps });
  return bringCheckpointHome(db, r, modelDir, ctx, settings);
}

/** The step of checkpoints/last in a model directory, or null when it has none. */
async function checkpointStepOf(session: SshSession, modelDir: string, signal: AbortSignal): Promise<number | null> {
  const file = path.posix.join(modelDir, "checkpoints", "last", "training_state", "training_step.json");
  const out = await run(session, `tr -d '\\n' < ${quoteShell(file)} 2>/dev/null; true`, { what: "Reading the model directory", signal, timeoutMs: 60_000 });
  try {
    const step = (JSON.parse(out.trim() || "null") as { step?: unknown } | null)?.step;
    return Number.isInteger(step) ? (step as number) : null;
  } catch {
    return null; // being written: read again next time
  }
}

/** Where the API says the model goes, when it names a usable absolute path; else the folder Gantry asked for. */
const modelDirOf = (state: TransactionState, outputDir: string) => (state.modelPath && state.modelPath.startsWith("/") && hostPathSchema.safeParse(state.modelPath).success ? state.modelPath.replace(/\/+$/, "") : outputDir);

async function follow(db: Db, r: RunRow, transactionId: string, outputDir: string, ctx: Ctx): Promise<string> {
  const { settings, progress, signal } = ctx;
  let delay = settings.TRAINING_POLL_MS;
  for (;;) {
    signal.throwIfAborted();
    const row = await db.trainingRun.findUniqueOrThrow({ where: { id: r.id }, select: { status: true, unreachableSince: true, apiStatus: true, lastStep: true, finalCheckpointSeenAt: true } });
    let state: TransactionState | null;
    let checkpointStep: number | null = null;
    let modelDir = outputDir;
    try {
      state = await readTransaction(r.target, transactionId, { signal });
      if (state) {
        modelDir = modelDirOf(state, outputDir);
        checkpointStep = await checkpointStepOf(await ctx.connect(), modelDir, signal);
      }
    } catch (error) {
      if (signal.aborted) throw error;
      if (isAppError(error) && error.code === "CONFLICT") throw error; // a changed host key: never go on blindly
      ctx.dropSession();
      const lost = await noteNoAnswer(db, r, { unreachableSince: row.unreachableSince, error, lostAfterMs: settings.TRAINING_LOST_AFTER_MS, progress, goesOn: "training goes on at the service if it is up" });
      if (lost) {
        await setStatus(db, r.id, "lost", { error: lost, finishedAt: new Date() });
        throw new RunEnded(lost);
      }
      delay = Math.min(delay * 2, 10_000);
      await sleep(delay, undefined, { signal });
      continue;
    }
    delay = settings.TRAINING_POLL_MS;
    if (!state) {
      const reason = `The transactions API of ${r.target.name} no longer knows transaction ${transactionId}`;
      await setStatus(db, r.id, "lost", { error: reason, finishedAt: new Date() });
      throw new RunEnded(reason);
    }

    const fromProgress = state.progress === null ? null : Math.floor(r.steps * Math.min(1, state.progress > 1 ? state.progress / 100 : state.progress));
    const lastStep = Math.max(row.lastStep ?? 0, checkpointStep ?? 0, fromProgress ?? 0) || null;
    if (row.unreachableSince || row.status !== "running" || row.apiStatus !== state.status || lastStep !== row.lastStep) {
      await setStatus(db, r.id, "running", { unreachableSince: null, apiStatus: state.status, lastStep });
      if (row.unreachableSince) await progress.log(`${r.target.name} answers again; following the transaction`);
      if (row.apiStatus !== state.status) await progress.log(`Transaction ${transactionId}: ${state.status}${state.message ? ` — ${state.message}` : ""}${["TRAINING", "COMPLETED", "FAILED"].includes(state.status) ? "" : " (a status Gantry does not interpret; it goes on following)"}`);
      if (lastStep !== null && lastStep !== row.lastStep) await progress.set(0.22 + 0.66 * Math.min(1, lastStep / r.steps), `Step ${lastStep} of ${r.steps}`);
    }

    const judged = judgeTransaction({ transactionId, state, checkpointStep, steps: r.steps, modelDir, finalCheckpointSeenAt: row.finalCheckpointSeenAt, now: new Date(), stuckAfterMs: settings.TRAINING_API_STUCK_AFTER_MS });
    if (judged.kind === "failed") {
      await setStatus(db, r.id, "failed", { error: judged.reason, finishedAt: new Date() });
      throw new RunEnded(judged.reason);
    }
    if (judged.kind === "succeeded") {
      if (judged.note) await progress.log(judged.note, "warn");
      return modelDir;
    }
    if (judged.finalCheckpointSeenAt?.getTime() !== row.finalCheckpointSeenAt?.getTime()) {
      await db.trainingRun.update({ where: { id: r.id }, data: { finalCheckpointSeenAt: judged.finalCheckpointSeenAt } });
      if (judged.finalCheckpointSeenAt) await progress.log(`The final checkpoint (step ${r.steps}) is in ${modelDir}; waiting for the API to say COMPLETED`);
    }
    await sleep(delay, undefined, { signal });
  }
}
