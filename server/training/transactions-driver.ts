import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Db } from "../db";
import { AppError, isAppError } from "../errors";
import { isInterrupted } from "../jobs/cancellation";
import type { ProgressReporter } from "../jobs/progress";
import type { BlobStore } from "../storage/blob-store";
import type { SshSession } from "../ssh/ssh-client";
import { quoteShell } from "../ssh/shell-quote";
import { datasetDir } from "../datasets/datasets.schemas";
import { connectTrainingHost, resolveWorkDir, run } from "./host";
import { listDatasetFiles, syncDataset } from "./dataset-sync";
import { runPaths } from "./run-host";
import { fetchCheckpoint, listCheckpoint, registerCheckpoint } from "./checkpoint.service";
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
}

type RunRow = NonNullable<Awaited<ReturnType<typeof loadRun>>>;

function loadRun(db: Db, runId: string) {
  return db.trainingRun.findUnique({ where: { id: runId }, include: { target: true, dataset: true } });
}

async function setStatus(db: Db, runId: string, status: RunStatus, data: Record<string, unknown> = {}) {
  await db.trainingRun.update({ where: { id: runId }, data: { status, ...data } });
}

/** A final outcome reached here: recorded on the run, and never retried. */
class RunEnded extends AppError {
  constructor(message: string) {
    super("CONFLICT", message);
  }
}

interface Ctx {
  connect: () => Promise<SshSession>;
  dropSession: () => void;
  settings: TransactionDriverSettings;
  blobs: BlobStore;
  progress: ProgressReporter;
  signal: AbortSignal;
}

export async function driveTransactionRun(db: Db, { runId, settings, blobs, progress, signal }: { runId: string; settings: TransactionDriverSettings; blobs: BlobStore; progress: ProgressReporter; signal: AbortSignal }): Promise<{ status: RunStatus }> {
  const r = await loadRun(db, runId);
  if (!r) throw new AppError("NOT_FOUND", "The training run was deleted");
  let session: SshSession | null = null;
  const connect = async () => {
    if (session && !session.isClosed) return session;
    session = await connectTrainingHost(r.target, { signal });
    return session;
  };
  const dropSession = () => {
    (session as SshSession | null)?.close();
    session = null;
  };
  try {
    return await drive(db, r, { connect, dropSession, settings, blobs, progress, signal });
  } catch (error) {
    // Its worker is stopping: the transaction goes on at the service, and the next worker follows it.
    if (isInterrupted(signal)) throw error;
    if (signal.aborted) {
      const current = await db.trainingRun.findUnique({ where: { id: runId }, select: { transactionId: true } });
      await setStatus(db, runId, "cancelled", {
        finishedAt: new Date(),
        error: current?.transactionId ? `Gantry stopped following transaction ${current.transactionId}. The transactions API has no way to cancel a transaction, so ${r.target.name} may go on training it` : null,
      });
      throw error;
    }
    if (error instanceof RunEnded) {
      await progress.log(error.message, "error");
      throw error;
    }
    await db.trainingRun.update({ where: { id: runId }, data: { error: (error as Error).message } });
    throw isAppError(error) && error.code !== "INTERNAL" ? new AppError("INTERNAL", error.message, { cause: error }) : error;
  } finally {
    dropSession();
  }
}

async function drive(db: Db, r: RunRow, ctx: Ctx): Promise<{ status: RunStatus }> {
  const { connect, settings, progress, signal } = ctx;
  const workDir = r.runDir ? path.posix.dirname(path.posix.dirname(r.runDir)) : await resolveWorkDir(await connect(), r.target.workDir, signal);
  const paths = runPaths(workDir, r.id, r.attempt, r.outputDir);
  if (!r.runDir) await db.trainingRun.update({ where: { id: r.id }, data: { runDir: paths.runDir, outputDir: paths.outputDir } });

  // 1. Start the transaction, unless this attempt has one.
  let transactionId = r.transactionId;
  if (!transactionId) {
    await setStatus(db, r.id, "syncing", { startedAt: r.startedAt ?? new Date() });
    const build = await listDatasetFiles(datasetDir(settings, r.dataset.orgId, r.dataset.repoId));
    const synced = await syncDataset({ connect, workDir, orgId: r.orgId, repoId: r.dataset.repoId, buildId: r.dataset.buildId ?? "current", files: build, progress, signal, span: [0.02, 0.2] });
    await setStatus(db, r.id, "launching");
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
  await progress.step("Fetching the checkpoint", 0.9);
  const session = await connect();
  const checkpoint = await listCheckpoint(session, path.posix.join(modelDir, "checkpoints", "last"), signal);
  await fetchCheckpoint(session, { ...checkpoint, blobs: ctx.blobs, progress, signal, span: [0.9, 0.98] });
  await progress.step("Registering the checkpoint", 0.98);
  const version = await registerCheckpoint(db, { run: r, files: checkpoint.files, step: r.steps, targetName: r.target.name, repoId: r.dataset.repoId });
  await setStatus(db, r.id, "succeeded", { checkpointVersionId: version.versionId, finishedAt: new Date(), error: null });
  await progress.log(`Registered as version ${version.number} of the model ${r.name}`);
  return { status: "succeeded" };
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
      const since = row.unreachableSince ?? new Date();
      if (!row.unreachableSince) {
        await setStatus(db, r.id, "unreachable", { unreachableSince: since });
        await progress.log(`${r.target.name} does not answer (${(error as Error).message}); the run is marked unreachable, and training goes on at the service if it is up`, "warn");
      }
      if (Date.now() - since.getTime() > settings.TRAINING_LOST_AFTER_MS) {
        const reason = `${r.target.name} did not answer for ${Math.round(settings.TRAINING_LOST_AFTER_MS / 60_000)} min; the run is declared lost`;
        await setStatus(db, r.id, "lost", { error: reason, finishedAt: new Date() });
        throw new RunEnded(reason);
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
