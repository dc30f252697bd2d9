import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { recordAudit } from "../audit/audit.service";
import type { OrgActor } from "../auth/roles";
import type { Db } from "../db";
import { findDatasetRoot } from "../datasets/lerobot/source";
import { resolveImportFolder } from "../datasets/import.service";
import { AppError } from "../errors";
import { evaluateDatasetJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import type { ProgressReporter } from "../jobs/progress";
import { METRIC_CODES, startExternalEvaluationInput } from "./evaluation.schemas";
import { fetchHubDataset } from "./hub-dataset";

// Scoring a dataset Gantry does not hold: a LeRobot folder on the server (inside the import
// roots, as a folder import is) or a dataset on the hub (HF_ENDPOINT). The scoring is the same
// job as for a dataset in Gantry; only where it reads from differs, and the report is kept
// with the version it describes (the hub's commit, or a hash of the folder's files).

export interface ExternalSourceSettings {
  GANTRY_HOME: string;
  datasetImportRoots: string[];
  MAX_DOWNLOAD_TIMEOUT: number;
  DATASET_MAX_IMPORT_BYTES: number;
  EVALUATION_CACHE_MAX_BYTES: number;
}

/** Where hub datasets are kept while they are scored, under the instance's own folder. */
export const evaluationCacheDir = (settings: { GANTRY_HOME: string }) => path.join(settings.GANTRY_HOME, "evaluation-cache");

export async function startExternalEvaluation(
  db: Db,
  { actor, input: raw, settings }: { actor: OrgActor; input: z.input<typeof startExternalEvaluationInput>; settings: { datasetImportRoots: string[]; HF_ENDPOINT: string } },
): Promise<{ evaluationId: string; jobId: string }> {
  const input = startExternalEvaluationInput.parse(raw);
  const metrics = METRIC_CODES.filter((m) => input.metrics.includes(m));
  let source: { sourceKind: "folder" | "hub"; sourceRef: string; sourceRevision: string | null; sourceEndpoint: string | null };
  if (input.source.kind === "folder") {
    // Checked now so a person hears at once of a folder outside the roots or no dataset in it;
    // the job checks again, since the folder may change before it runs.
    const folder = await resolveImportFolder(settings, input.source.path);
    await findDatasetRoot(folder);
    source = { sourceKind: "folder", sourceRef: folder, sourceRevision: null, sourceEndpoint: null };
  } else {
    source = { sourceKind: "hub", sourceRef: input.source.repo, sourceRevision: input.source.revision, sourceEndpoint: settings.HF_ENDPOINT };
  }
  return db.$transaction(async (tx) => {
    const evaluation = await tx.datasetEvaluation.create({ data: { orgId: actor.orgId, ...source, metrics, framesPerEpisode: input.framesPerEpisode, fresh: input.fresh, createdById: actor.userId } });
    const { jobId } = await enqueue(evaluateDatasetJob, { evaluationId: evaluation.id }, { tx, orgId: actor.orgId, createdById: actor.userId });
    await tx.datasetEvaluation.update({ where: { id: evaluation.id }, data: { jobId } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "dataset.evaluate_external", target: `${source.sourceKind}:${source.sourceRef}`, data: { ...(source.sourceRevision ? { revision: source.sourceRevision } : {}), metrics } });
    return { evaluationId: evaluation.id, jobId };
  });
}

/** The folder to read for a folder or hub scoring, and the version of the dataset found there. */
export async function prepareExternalSource(
  evaluation: { sourceKind: string | null; sourceRef: string | null; sourceRevision: string | null; sourceEndpoint: string | null; metrics: string[] },
  { settings, progress, signal }: { settings: ExternalSourceSettings; progress: ProgressReporter; signal: AbortSignal },
): Promise<{ dir: string; version: string }> {
  if (evaluation.sourceKind === "folder" && evaluation.sourceRef) {
    await progress.step(`Reading ${evaluation.sourceRef}`, 0.01);
    const folder = await resolveImportFolder(settings, evaluation.sourceRef);
    const { root } = await findDatasetRoot(folder);
    return { dir: root, version: await folderVersion(root) };
  }
  if (evaluation.sourceKind === "hub" && evaluation.sourceRef && evaluation.sourceEndpoint) {
    const revision = evaluation.sourceRevision ?? "main";
    await progress.step(`Fetching ${evaluation.sourceRef}@${revision} from the hub`, 0.01);
    const got = await fetchHubDataset({
      endpoint: evaluation.sourceEndpoint,
      repo: evaluation.sourceRef,
      revision,
      cacheDir: evaluationCacheDir(settings),
      needsVideos: evaluation.metrics.some((m) => m === "h" || m === "v"),
      timeoutMs: settings.MAX_DOWNLOAD_TIMEOUT * 1000,
      maxBytes: settings.DATASET_MAX_IMPORT_BYTES,
      maxCacheBytes: settings.EVALUATION_CACHE_MAX_BYTES,
      signal,
      // Fetching is the first fifth of the job; scoring takes the rest.
      onProgress: (fraction, message) => progress.set(0.01 + 0.19 * fraction, `Fetched ${message}`),
      onLog: (message) => progress.log(message),
    });
    await progress.log(`Scoring ${evaluation.sourceRef} at commit ${got.sha}`);
    return { dir: got.dir, version: got.sha };
  }
  throw new AppError("INTERNAL", "This evaluation names neither a dataset nor a source to score");
}

/**
 * A folder's version: its info.json and the size and mtime of every file the metrics read. A
 * re-recorded or re-copied dataset gets a new one; the same files give the same one.
 */
export async function folderVersion(root: string): Promise<string> {
  const hash = crypto.createHash("sha256");
  hash.update(await fs.readFile(path.join(root, "meta/info.json")));
  const lines: string[] = [];
  for (const top of ["meta", "data", "videos"]) {
    for (const entry of await fs.readdir(path.join(root, top), { withFileTypes: true, recursive: true }).catch(() => [])) {
      if (!entry.isFile()) continue;
      const file = path.join(entry.parentPath, entry.name);
      const stat = await fs.stat(file).catch(() => null);
      if (stat) lines.push(`${path.relative(root, file)}\t${stat.size}\t${Math.round(stat.mtimeMs)}`);
    }
  }
  hash.update(lines.sort().join("\n"));
  return `files:${hash.digest("hex").slice(0, 32)}`;
}
