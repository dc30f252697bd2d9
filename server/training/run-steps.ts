import path from "node:path";
import type { Db } from "../db";
import { AppError, isAppError } from "../errors";
import { isInterrupted } from "../jobs/cancellation";
import type { ProgressReporter } from "../jobs/progress";
import type { BlobStore } from "../storage/blob-store";
import { redialling, type SshSession } from "../ssh/ssh-client";
import { buildFilesOf, localBuildDir } from "../datasets/build-files";
import { connectTrainingHost, resolveWorkDir } from "./host";
import { listDatasetFiles, syncDataset, type SyncResult } from "./dataset-sync";
import { runPaths, type RunPaths } from "./run-host";
import { fetchCheckpoint, listCheckpoint, registerCheckpoint } from "./checkpoint.service";
import { ExportFailed, exportCheckpoint } from "./export.service";
import type { RunStatus } from "./training.schemas";

// The steps every kind of run shares, whatever starts and follows its training (a detached
// process over SSH, a Slurm job, the transactions API): the run's row, one SSH session held for
// the job, the run folder, the dataset sync, a host that stops answering, the checkpoint
// brought home, and how a job's end (cancel, a stopping worker, an outcome, a lost connection)
// is recorded.

export type RunRow = NonNullable<Awaited<ReturnType<typeof loadRun>>>;

export function loadRun(db: Db, runId: string) {
  return db.trainingRun.findUnique({ where: { id: runId }, include: { target: true, dataset: true } });
}

export async function setStatus(db: Db, runId: string, status: RunStatus, data: Record<string, unknown> = {}) {
  await db.trainingRun.update({ where: { id: runId }, data: { status, ...data } });
}

/** A final outcome the service reached itself: recorded on the run, and never retried. */
export class RunEnded extends AppError {
  constructor(message: string) {
    super("CONFLICT", message);
  }
}

export interface HostCtx {
  /** The job's SSH session to the target, opened on first use and again after a drop. */
  connect: () => Promise<SshSession>;
  dropSession: () => void;
  blobs: BlobStore;
  progress: ProgressReporter;
  signal: AbortSignal;
}

/**
 * Runs one attempt of a run's job with an SSH session to its target, and records how the job
 * ended: a stopping worker leaves the run as it is (the next worker picks it up); a cancel calls
 * `onCancel`; an outcome the service reached is logged and final; anything else is retried.
 */
export async function withRunSession<T>(
  db: Db,
  r: RunRow,
  { blobs, progress, signal, onCancel }: { blobs: BlobStore; progress: ProgressReporter; signal: AbortSignal; onCancel: () => Promise<void> },
  body: (ctx: HostCtx) => Promise<T>,
): Promise<T> {
  const { connect, close: dropSession } = redialling(() => connectTrainingHost(r.target, { signal }));
  try {
    return await body({ connect, dropSession, blobs, progress, signal });
  } catch (error) {
    if (isInterrupted(signal)) throw error;
    if (signal.aborted) {
      await onCancel();
      throw error;
    }
    if (error instanceof RunEnded) {
      await progress.log(error.message, "error");
      throw error;
    }
    await db.trainingRun.update({ where: { id: r.id }, data: { error: (error as Error).message } });
    throw isAppError(error) && error.code !== "INTERNAL" ? new AppError("INTERNAL", error.message, { cause: error }) : error;
  } finally {
    dropSession();
  }
}

/** The attempt's folder on the host; the work directory is resolved (and the folders recorded) once. */
export async function runFolderOf(db: Db, r: RunRow, { connect, signal }: Pick<HostCtx, "connect" | "signal">): Promise<RunPaths> {
  const workDir = r.runDir ? path.posix.dirname(path.posix.dirname(r.runDir)) : await resolveWorkDir(await connect(), r.target.workDir, signal);
  const paths = runPaths(workDir, r.id, r.attempt, r.outputDir);
  if (!r.runDir) await db.trainingRun.update({ where: { id: r.id }, data: { runDir: paths.runDir, outputDir: paths.outputDir } });
  return paths;
}

/** Syncs the dataset's current build into the host's cache (the run shows "syncing", then "launching"). */
export async function syncRunDataset(db: Db, r: RunRow, paths: RunPaths, settings: { DATASETS_DIR: string }, { connect, blobs, progress, signal }: HostCtx): Promise<SyncResult> {
  await setStatus(db, r.id, "syncing", { startedAt: r.startedAt ?? new Date() });
  // The build as it is now, on this machine (written from the blob store if it is not here).
  const dataset = await db.dataset.findUniqueOrThrow({ where: { id: r.dataset.id } });
  const files = await listDatasetFiles(await localBuildDir(blobs, settings, dataset), { known: buildFilesOf(dataset) });
  const workDir = path.posix.dirname(path.posix.dirname(paths.runDir));
  const synced = await syncDataset({ connect, workDir, orgId: r.orgId, repoId: dataset.repoId, buildId: dataset.buildId ?? "current", files, progress, signal, span: [0.02, 0.2] });
  await setStatus(db, r.id, "launching");
  return synced;
}

/**
 * Records that the target did not answer: "unreachable" from the first miss (said once), and
 * the reason the run is lost once it has not answered for TRAINING_LOST_AFTER_MS (else null).
 */
export async function noteNoAnswer(
  db: Db,
  r: RunRow,
  { unreachableSince, error, lostAfterMs, progress, goesOn, lostHint = "" }: { unreachableSince: Date | null; error: unknown; lostAfterMs: number; progress: ProgressReporter; goesOn: string; lostHint?: string },
): Promise<string | null> {
  const since = unreachableSince ?? new Date();
  if (!unreachableSince) {
    await setStatus(db, r.id, "unreachable", { unreachableSince: since });
    await progress.log(`${r.target.name} does not answer (${(error as Error).message}); the run is marked unreachable, and ${goesOn}`, "warn");
  }
  if (Date.now() - since.getTime() <= lostAfterMs) return null;
  return `${r.target.name} did not answer for ${Math.round(lostAfterMs / 60_000)} min; the run is declared lost${lostHint}`;
}

/**
 * The final checkpoint (`<modelDir>/checkpoints/last`) comes home, is registered, is exported to
 * ONNX when the target has an export command, and the run has succeeded.
 */
export async function bringCheckpointHome(
  db: Db,
  r: RunRow,
  modelDir: string,
  { connect, blobs, progress, signal }: HostCtx,
  settings: { MODEL_MAX_UPLOAD_BYTES: number; TRAINING_EXPORT_TIMEOUT_MS: number },
): Promise<{ status: "succeeded" }> {
  await progress.step("Fetching the checkpoint", 0.9);
  const session = await connect();
  const checkpoint = await listCheckpoint(session, path.posix.join(modelDir, "checkpoints", "last"), signal);
  await fetchCheckpoint(session, { ...checkpoint, blobs, progress, signal, span: [0.9, 0.98] });
  await progress.step("Registering the checkpoint", 0.98);
  const version = await registerCheckpoint(db, { run: r, files: checkpoint.files, step: r.steps, targetName: r.target.name, repoId: r.dataset.repoId });
  await db.trainingRun.update({ where: { id: r.id }, data: { checkpointVersionId: version.versionId } });
  await progress.log(`Registered as version ${version.number} of the model ${r.name}`);
  if (r.target.exportCommand) {
    const row = await db.trainingRun.findUniqueOrThrow({ where: { id: r.id }, select: { runDir: true, outputDir: true } });
    try {
      const onnx = await exportCheckpoint(db, { ...r, ...row }, { session, checkpointDir: checkpoint.dir, step: r.steps, blobs, progress, signal, maxBytes: settings.MODEL_MAX_UPLOAD_BYTES, timeoutMs: settings.TRAINING_EXPORT_TIMEOUT_MS });
      await progress.log(`The ONNX export is version ${onnx.number} of the model ${r.name}; it is being validated`);
    } catch (error) {
      if (!(error instanceof ExportFailed)) throw error;
      await db.trainingRun.update({ where: { id: r.id }, data: { exportError: error.message } });
      await progress.log(`The checkpoint is home, but the ONNX export failed: ${error.message}`, "warn");
    }
  }
  await setStatus(db, r.id, "succeeded", { finishedAt: new Date(), error: null });
  return { status: "succeeded" };
}
