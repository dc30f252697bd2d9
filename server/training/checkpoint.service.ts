import crypto from "node:crypto";
import path from "node:path";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import type { ProgressReporter } from "../jobs/progress";
import type { BlobStore } from "../storage/blob-store";
import type { SshSession } from "../ssh/ssh-client";
import { quoteShell } from "../ssh/shell-quote";
import { run } from "./host";

// A run's checkpoint comes home: the files of checkpoints/<step>/pretrained_model (config,
// safetensors, train config, pre/post-processors — not training_state) go into the blob store,
// each checked against the sha256 the host computed, and become a model version of kind
// "lerobot-checkpoint" linked to its run and dataset. A file already stored is not fetched
// again, so a fetch cut off goes on where it stood.

export interface CheckpointFile {
  path: string;
  sha256: string;
  bytes: number;
}

const MAX_FILES = 200;
const MAX_BYTES = 50 * 1024 ** 3;

/** Lists a checkpoint's files, refusing links that lead out of it and anything not a plain file. */
export async function listCheckpoint(session: SshSession, checkpointDir: string, signal?: AbortSignal): Promise<{ dir: string; files: CheckpointFile[] }> {
  const q = quoteShell;
  const model = path.posix.join(checkpointDir, "pretrained_model");
  const out = await run(
    session,
    `real=$(readlink -f -- ${q(model)}) || exit 4; [ -d "$real" ] || { echo "no-folder"; exit 0; }; echo "dir:$real"; cd "$real" && find . -mindepth 1 \\( -type l -printf 'l %p %l\\n' \\) -o \\( -type f -printf 'f %s %p\\n' \\) -o \\( -type d -printf 'd 0 %p\\n' \\) -o -printf 'x 0 %p\\n'`,
    { what: "Listing the checkpoint", signal },
  );
  if (out.includes("no-folder")) throw new AppError("CONFLICT", `${checkpointDir} has no pretrained_model folder; the run wrote no usable checkpoint there`);
  const dir = out.split("\n").find((l) => l.startsWith("dir:"))!.slice(4).trim();
  const entries = out.split("\n").filter((l) => /^[lfdx] /.test(l));
  const files: { path: string; bytes: number }[] = [];
  for (const line of entries) {
    const kind = line[0];
    if (kind === "l") throw new AppError("BAD_REQUEST", `The checkpoint holds a link (${line.slice(2).split(" ")[0]}); Gantry does not follow links out of a checkpoint folder`);
    if (kind === "x") throw new AppError("BAD_REQUEST", `The checkpoint holds ${line.slice(4)}, which is not a file or folder`);
    if (kind === "d") continue;
    const [, size, rel] = /^f (\d+) \.\/(.+)$/.exec(line) ?? [];
    if (!rel || rel.split("/").some((p) => p === ".." || p === "")) throw new AppError("BAD_REQUEST", `The checkpoint holds a file Gantry cannot name safely: ${JSON.stringify(line.slice(2, 200))}`);
    files.push({ path: rel, bytes: Number(size) });
  }
  if (!files.length) throw new AppError("CONFLICT", "The checkpoint folder is empty");
  if (files.length > MAX_FILES) throw new AppError("BAD_REQUEST", `The checkpoint holds ${files.length} files, more than the ${MAX_FILES} Gantry brings home`);
  const total = files.reduce((n, f) => n + f.bytes, 0);
  if (total > MAX_BYTES) throw new AppError("BAD_REQUEST", `The checkpoint is ${(total / 1024 ** 3).toFixed(1)} GiB, more than Gantry brings home (${MAX_BYTES / 1024 ** 3} GiB)`);
  const sums = await run(session, `cd ${q(dir)} && sha256sum -- ${files.map((f) => q(f.path)).join(" ")}`, { what: "Hashing the checkpoint", signal, timeoutMs: 30 * 60_000 });
  const byPath = new Map(sums.trim().split("\n").map((l) => [l.slice(66).trim(), l.slice(0, 64)]));
  return { dir, files: files.map((f) => ({ ...f, sha256: byPath.get(f.path) ?? "" })).map((f) => {
    if (!/^[0-9a-f]{64}$/.test(f.sha256)) throw new AppError("INTERNAL", `The host did not hash ${f.path}`);
    return f;
  }) };
}

/** Brings every file into the blob store, checked against its sha256. */
export async function fetchCheckpoint(session: SshSession, { dir, files, blobs, progress, signal, span = [0, 1] }: { dir: string; files: CheckpointFile[]; blobs: BlobStore; progress: ProgressReporter; signal?: AbortSignal; span?: [number, number] }): Promise<void> {
  const sftp = await session.sftp();
  const total = files.reduce((n, f) => n + f.bytes, 0);
  let done = 0;
  for (const f of files) {
    signal?.throwIfAborted();
    // keep, not has: a blob already stored must outlive the sweep until the version row names it.
    if (!(await blobs.keep(f.sha256))) {
      const stream = sftp.createReadStream(path.posix.join(dir, f.path));
      await blobs.put(stream, { expectedSha256: f.sha256, maxBytes: f.bytes, signal });
    }
    done += f.bytes;
    await progress.set(span[0] + ((span[1] - span[0]) * done) / Math.max(1, total), `Fetched ${f.path} (${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB)`);
  }
}

/**
 * A new version of the run's model (made on first use, named after the run, and locked while
 * the version takes the next number), its source saying which run and step it came from.
 */
export async function createRunModelVersion(
  tx: Tx,
  run: { id: string; orgId: string; name: string; datasetId: string; createdById: string | null },
  { repoId, targetName, step, data }: { repoId: string; targetName: string; step: number; data: { kind: "onnx" | "lerobot-checkpoint"; status: "validating" | "ready"; bytes: bigint; sha256?: string; files?: CheckpointFile[] } },
): Promise<{ versionId: string; modelId: string; number: number }> {
  await tx.$executeRaw`INSERT INTO "Model" ("id", "orgId", "name", "description", "createdById", "createdAt", "updatedAt")
    VALUES (gen_random_uuid(), ${run.orgId}::uuid, ${run.name}, ${`Checkpoints of the training run ${run.name} on ${repoId}`}, ${run.createdById}::uuid, now(), now()) ON CONFLICT ("orgId", "name") DO NOTHING`;
  const model = await tx.model.findUniqueOrThrow({ where: { orgId_name: { orgId: run.orgId, name: run.name } } });
  await tx.$queryRaw`SELECT "id" FROM "Model" WHERE "id" = ${model.id}::uuid FOR UPDATE`;
  const last = await tx.modelVersion.aggregate({ where: { modelId: model.id }, _max: { number: true } });
  const number = (last._max.number ?? 0) + 1;
  const version = await tx.modelVersion.create({
    data: {
      id: crypto.randomUUID(),
      orgId: run.orgId,
      modelId: model.id,
      number,
      ...data,
      files: data.files?.map((f) => ({ path: f.path, sha256: f.sha256, bytes: f.bytes })),
      source: { kind: "training", runId: run.id, runName: run.name, datasetId: run.datasetId, repoId, step, target: targetName },
      trainingRunId: run.id,
      createdById: run.createdById,
    },
  });
  await tx.model.update({ where: { id: model.id }, data: { updatedAt: new Date() } });
  return { versionId: version.id, modelId: model.id, number };
}

/** Registers the fetched checkpoint as a version of the run's model (made on first use). */
export async function registerCheckpoint(db: Db, { run, files, step, targetName, repoId }: { run: { id: string; orgId: string; name: string; datasetId: string; createdById: string | null }; files: CheckpointFile[]; step: number; targetName: string; repoId: string }): Promise<{ versionId: string; modelId: string; number: number }> {
  return db.$transaction(async (tx) => {
    const existing = await tx.modelVersion.findFirst({ where: { orgId: run.orgId, trainingRunId: run.id, kind: "lerobot-checkpoint", source: { path: ["step"], equals: step } } });
    if (existing) return { versionId: existing.id, modelId: existing.modelId, number: existing.number };
    return createRunModelVersion(tx, run, { repoId, targetName, step, data: { kind: "lerobot-checkpoint", status: "ready", files, bytes: BigInt(files.reduce((n, f) => n + f.bytes, 0)) } });
  });
}
