import crypto from "node:crypto";
import path from "node:path";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { ProgressReporter } from "../jobs/progress";
import { validateModelJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import type { BlobStore } from "../storage/blob-store";
import type { SshSession } from "../ssh/ssh-client";
import { quoteShell } from "../ssh/shell-quote";
import { renderCommand } from "./command";
import { createRunModelVersion } from "./checkpoint.service";

// A target's export command turns a run's checkpoint into ONNX on the host (LeRobot has no
// exporter of its own; teams keep a script for their policy). Gantry runs it in the run's
// folder with the target's environment, brings the file home checked against the host's
// sha256, and adds it to the run's model as an ONNX version that goes through the same
// validation as any upload — so a run can end in a policy ready to deploy. An export that
// fails leaves the run succeeded (its checkpoint is home) and says why.

export interface ExportRun {
  id: string;
  orgId: string;
  name: string;
  policyType: string;
  steps: number;
  runDir: string | null;
  outputDir: string | null;
  createdById: string | null;
  datasetId: string;
  dataset: { repoId: string };
  target: { name: string; activate: string; exportCommand: string };
}

/** What an export failure says: the command's own last lines, so the person can fix the script. */
export class ExportFailed extends AppError {
  constructor(message: string) {
    super("BAD_REQUEST", message);
  }
}

export function exportScript({ activate, command, onnx }: { activate: string; command: string; onnx: string }): string {
  return [
    "#!/bin/bash",
    "# The ONNX export of a Gantry run's checkpoint.",
    `rm -f -- ${quoteShell(onnx)}`,
    ...(activate ? [`${activate} || exit 97`] : []),
    command,
    "",
  ].join("\n");
}

/**
 * Runs the export on the host and registers its ONNX as a version of the run's model waiting
 * for validation. A run exported before keeps its version (a retried job adds none).
 */
export async function exportCheckpoint(
  db: Db,
  run: ExportRun,
  { session, checkpointDir, step, blobs, progress, signal, maxBytes, timeoutMs }: { session: SshSession; checkpointDir: string; step: number; blobs: BlobStore; progress: ProgressReporter; signal?: AbortSignal; maxBytes: number; timeoutMs: number },
): Promise<{ versionId: string; number: number }> {
  const existing = await db.modelVersion.findFirst({ where: { orgId: run.orgId, trainingRunId: run.id, kind: "onnx", source: { path: ["step"], equals: step } } });
  if (existing) return { versionId: existing.id, number: existing.number };
  if (!run.runDir || !run.outputDir) throw new AppError("INTERNAL", "The run has no folder on the host to export from");
  const dir = path.posix.join(run.runDir, "export");
  const onnx = path.posix.join(dir, "model.onnx");
  const command = renderCommand(run.target.exportCommand, {
    checkpoint: checkpointDir,
    onnx,
    output: run.outputDir,
    name: run.name,
    policy: run.policyType,
    repo_id: run.dataset.repoId,
    steps: String(run.steps),
  });
  const script = path.posix.join(dir, "export.sh");
  const log = path.posix.join(dir, "export.log");
  const b64 = Buffer.from(exportScript({ activate: run.target.activate, command, onnx })).toString("base64");
  await progress.step("Exporting the checkpoint to ONNX", 0.985);
  const result = await session.exec(
    `mkdir -p ${quoteShell(dir)} && cd ${quoteShell(dir)} && echo ${b64} | base64 -d > ${quoteShell(script)} || exit 1; bash ${quoteShell(script)} > ${quoteShell(log)} 2>&1 < /dev/null; code=$?; echo "exit:$code"; tail -c 2000 ${quoteShell(log)} | tail -n 8 | sed 's/^/log:/'; [ -f ${quoteShell(onnx)} ] && echo "size:$(stat -c %s ${quoteShell(onnx)})" && echo "sum:$(sha256sum < ${quoteShell(onnx)} | cut -c1-64)"; true`,
    { timeoutMs, signal, maxBytes: 64 * 1024 },
  );
  const lines = result.stdout.split("\n");
  const get = (key: string) => lines.find((l) => l.startsWith(`${key}:`))?.slice(key.length + 1).trim() ?? "";
  const tail = lines.filter((l) => l.startsWith("log:")).map((l) => l.slice(4)).join("\n").trim();
  const said = tail ? `; it printed:\n${tail}` : "";
  if (result.code !== 0 || get("exit") === "") throw new AppError("INTERNAL", `Running the export on ${session.target.name} did not finish (${result.signal ?? `exit ${result.code}`})`);
  if (get("exit") !== "0") throw new ExportFailed(`The export command exited with code ${get("exit")}${said}`);
  const bytes = Number(get("size"));
  const sha256 = get("sum");
  if (!get("size")) throw new ExportFailed(`The export command exited 0 but wrote nothing at {onnx} (${onnx})${said}`);
  if (!(bytes > 0)) throw new ExportFailed(`The export command wrote an empty file at ${onnx}`);
  if (bytes > maxBytes) throw new ExportFailed(`The exported ONNX is ${(bytes / 1024 ** 2).toFixed(0)} MiB, more than a model version may be (${(maxBytes / 1024 ** 2).toFixed(0)} MiB)`);
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new AppError("INTERNAL", `The host did not hash ${onnx}`);

  await progress.log(`The export wrote ${(bytes / 1e6).toFixed(1)} MB of ONNX; bringing it home`);
  // keep, not has: a blob already stored must outlive the sweep until the version row names it.
  if (!(await blobs.keep(sha256))) {
    const sftp = await session.sftp();
    await blobs.put(sftp.createReadStream(onnx), { expectedSha256: sha256, maxBytes: bytes, signal });
  }
  return registerExport(db, run, { sha256, bytes, step });
}

async function registerExport(db: Db, run: ExportRun, { sha256, bytes, step }: { sha256: string; bytes: number; step: number }): Promise<{ versionId: string; number: number }> {
  return db.$transaction(async (tx) => {
    const again = await tx.modelVersion.findFirst({ where: { orgId: run.orgId, trainingRunId: run.id, kind: "onnx", source: { path: ["step"], equals: step } } });
    if (again) return { versionId: again.id, number: again.number };
    const version = await createRunModelVersion(tx, run, { repoId: run.dataset.repoId, targetName: run.target.name, step, data: { kind: "onnx", status: "validating", sha256, bytes: BigInt(bytes) } });
    const { jobId } = await enqueue(validateModelJob, { versionId: version.versionId, dims: {} }, { tx, orgId: run.orgId, createdById: run.createdById });
    await tx.modelVersion.update({ where: { id: version.versionId }, data: { jobId } });
    await tx.trainingRun.update({ where: { id: run.id }, data: { exportVersionId: version.versionId, exportError: null } });
    return { versionId: version.versionId, number: version.number };
  });
}
