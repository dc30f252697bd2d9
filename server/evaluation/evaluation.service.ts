import path from "node:path";
import type { z } from "zod";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { buildFilesOf, localBuildDir } from "../datasets/build-files";
import { evaluateDatasetJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";
import type { ProgressReporter } from "../jobs/progress";
import { mediaTools, type MediaTools } from "../media/ffmpeg";
import type { BlobStore } from "../storage/blob-store";
import type { EmbeddingSums } from "./diversity";
import { describeModelDescriptor, embedEpisodeFrames, findImageEncoder, openImageEncoder } from "./image-encoder";
import { Prisma } from "../generated/prisma/client";
import { scoreConsistency } from "./consistency";
import { scoreCoverage } from "./coverage";
import { METRIC_CODES, METRIC_NAMES, reportSchema, type DescriptorModel, type EvalDataset, type MetricCode, type MetricResult, type Report, startEvaluationInput } from "./evaluation.schemas";
import { NO_CAMERA } from "./fidelity";
import { loadEvalDataset } from "./load";
import { evaluationCacheDir, prepareExternalSource, type ExternalSourceSettings } from "./external.service";
import { scoreRobot } from "./robot";
import { scoreTrajectory } from "./trajectory";
import { decideUnits } from "./units";
import { scoreVision } from "./vision";

// Scoring a dataset: a job reads the dataset's current build, computes the chosen metrics (the
// numeric ones from its parquet columns, the visual ones from frames sampled with ffmpeg) with
// progress per metric, and stores the report with the build it describes. A dataset's latest
// evaluation is what its page shows and what the quality gate reads.

export interface EvaluationSettings extends ExternalSourceSettings {
  DATASETS_DIR: string;
  FFMPEG_PATH?: string;
  FFPROBE_PATH?: string;
}

export async function startEvaluation(db: Db, { actor, input: raw }: { actor: OrgActor; input: z.input<typeof startEvaluationInput> }): Promise<{ evaluationId: string; jobId: string }> {
  const input = startEvaluationInput.parse(raw);
  const dataset = await db.dataset.findFirst({ where: { id: input.datasetId, orgId: actor.orgId } });
  if (!dataset) throw new AppError("NOT_FOUND", "That dataset does not exist in this organisation");
  if (!dataset.buildId) throw new AppError("CONFLICT", `${dataset.repoId} has no episodes in it yet; there is nothing to score`);
  const metrics = METRIC_CODES.filter((m) => input.metrics.includes(m));
  if (input.imageEncoderVersionId) {
    if (!metrics.includes("v")) throw new AppError("BAD_REQUEST", "An image encoder makes the descriptors of visual diversity (v) only; add v to the metrics or leave the encoder out");
    await findImageEncoder(db, { orgId: actor.orgId, versionId: input.imageEncoderVersionId });
  }
  return db.$transaction(async (tx) => {
    const evaluation = await tx.datasetEvaluation.create({ data: { orgId: actor.orgId, datasetId: dataset.id, buildId: dataset.buildId, metrics, framesPerEpisode: input.framesPerEpisode, fresh: input.fresh, imageEncoderVersionId: input.imageEncoderVersionId, createdById: actor.userId } });
    const { jobId } = await enqueue(evaluateDatasetJob, { evaluationId: evaluation.id }, { tx, orgId: actor.orgId, createdById: actor.userId });
    await tx.datasetEvaluation.update({ where: { id: evaluation.id }, data: { jobId } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "dataset.evaluate", target: `dataset:${dataset.id}`, data: { repoId: dataset.repoId, metrics, imageEncoderVersionId: input.imageEncoderVersionId } });
    return { evaluationId: evaluation.id, jobId };
  });
}

/** An evaluation whose job was ended without it (its worker died under it on every attempt): failed, saying why. */
export async function endEvaluationOfJob(tx: Tx, jobId: string, reason: string): Promise<void> {
  await tx.datasetEvaluation.updateMany({ where: { jobId, status: { in: ["queued", "running"] } }, data: { status: "failed", error: reason, finishedAt: new Date() } });
}

/** The job: reads the build, scores it metric by metric, stores the report. */
export async function runEvaluation(db: Db, { evaluationId, settings, blobs, progress, signal }: { evaluationId: string; settings: EvaluationSettings; blobs: BlobStore; progress: ProgressReporter; signal: AbortSignal }): Promise<{ overall: number | null }> {
  const evaluation = await db.datasetEvaluation.findUnique({ where: { id: evaluationId }, include: { dataset: true } });
  if (!evaluation) throw new AppError("NOT_FOUND", "The evaluation was deleted");
  await db.datasetEvaluation.update({ where: { id: evaluationId }, data: { status: "running", error: null } });
  try {
    let source: EvalSource;
    if (evaluation.dataset) {
      // An imported dataset keeps its own names for the joints; its cameras are whatever video
      // features the build holds (those it lacks are not in it).
      const map = evaluation.dataset.featureMap as { action?: string; state?: string } | null;
      source = {
        dir: await localBuildDir(blobs, settings, evaluation.dataset),
        files: buildFilesOf(evaluation.dataset),
        mapping: map?.action && map.state ? { action: map.action, state: map.state } : null,
        missingVideos: evaluation.dataset.missingVideos,
      };
    } else {
      const external = await prepareExternalSource(evaluation, { settings, progress, signal });
      await db.datasetEvaluation.update({ where: { id: evaluationId }, data: { sourceVersion: external.version } });
      evaluation.sourceVersion = external.version;
      source = { dir: external.dir, mapping: null, missingVideos: [] };
    }
    signal.throwIfAborted();
    const report = (evaluation.fresh ? null : await reusableReport(db, evaluation, progress)) ?? (await evaluate(db, evaluation, source, { settings, blobs, progress, signal }));
    const scores = Object.fromEntries(report.metrics.map((m) => [m.code, m.score]));
    await db.datasetEvaluation.update({ where: { id: evaluationId }, data: { status: "succeeded", overall: report.overall, scores, report: report as unknown as Prisma.InputJsonValue, finishedAt: new Date() } });
    await progress.log(`Overall ${report.overall === null ? "not measurable" : report.overall.toFixed(2)}: ${report.metrics.map((m) => `${m.code} ${m.score === null ? "–" : m.score.toFixed(2)}`).join(", ")}`);
    return { overall: report.overall };
  } catch (error) {
    const isCancel = signal.aborted;
    await db.datasetEvaluation.update({ where: { id: evaluationId }, data: { status: isCancel ? "cancelled" : "failed", error: isCancel ? null : (error as Error).message, finishedAt: new Date() } });
    throw error;
  }
}

/**
 * A build never changes once made: the report of an earlier scoring of the same build with the
 * same metrics and sampling is this scoring's too (unless a fresh one was asked for).
 */
async function reusableReport(
  db: Db,
  evaluation: { id: string; orgId: string; datasetId: string | null; buildId: string | null; sourceKind: string | null; sourceRef: string | null; sourceVersion: string | null; metrics: string[]; framesPerEpisode: number; imageEncoderVersionId: string | null },
  progress: ProgressReporter,
): Promise<Report | null> {
  // A folder or hub dataset at the same version (commit, or the same files) is the same data too.
  const same = evaluation.datasetId
    ? evaluation.buildId && { datasetId: evaluation.datasetId, buildId: evaluation.buildId }
    : evaluation.sourceVersion && { orgId: evaluation.orgId, sourceKind: evaluation.sourceKind, sourceRef: evaluation.sourceRef, sourceVersion: evaluation.sourceVersion };
  if (!same) return null;
  const earlier = await db.datasetEvaluation.findFirst({
    where: { ...same, status: "succeeded", framesPerEpisode: evaluation.framesPerEpisode, imageEncoderVersionId: evaluation.imageEncoderVersionId, id: { not: evaluation.id }, metrics: { hasEvery: evaluation.metrics } },
    orderBy: { createdAt: "desc" },
  });
  if (!earlier?.report || earlier.metrics.length !== evaluation.metrics.length) return null;
  const parsed = reportSchema.safeParse(earlier.report);
  if (!parsed.success) return null;
  await progress.log(`The dataset has not changed since its scoring of ${earlier.createdAt.toISOString()}; that report is reused (ask for a fresh scoring to compute it again)`);
  return parsed.data;
}

/** The folder a scoring reads, the dataset's own joint names, and the cameras it is known to lack. */
interface EvalSource {
  dir: string;
  /** Its files' sums where the blob store recorded them (path in the build → sha256). */
  files?: Record<string, { sha256: string }> | null;
  mapping: { action: string; state: string } | null;
  missingVideos: string[];
}

async function evaluate(
  db: Db,
  evaluation: { orgId: string; metrics: string[]; framesPerEpisode: number; fresh: boolean; imageEncoderVersionId: string | null; dataset: unknown },
  { dir, files, mapping, missingVideos }: EvalSource,
  { settings, blobs, progress, signal }: { settings: EvaluationSettings; blobs: BlobStore; progress: ProgressReporter; signal: AbortSignal },
): Promise<Report> {
  // An external dataset's fetch took the first fifth of the job.
  const base = evaluation.dataset ? 0 : 0.2;
  const scale = 1 - base;
  const at = (f: number) => base + scale * f;
  await progress.step("Reading the dataset", at(0.02));
  const { dataset: ds } = await loadEvalDataset(dir, { mapping });
  signal.throwIfAborted();
  const wanted = new Set(evaluation.metrics as MetricCode[]);
  const units = decideUnits(ds);
  const results = new Map<MetricCode, MetricResult>();
  const episodes = new Map(ds.episodes.map((e) => [e.index, { index: e.index, length: e.timestamps.length, task: e.task, findings: [] as Report["episodes"][number]["findings"] }]));
  const keep = (out: { result: MetricResult; findings: Map<number, Report["episodes"][number]["findings"]> }) => {
    results.set(out.result.code, out.result);
    for (const [index, list] of out.findings) episodes.get(index)?.findings.push(...list);
  };
  let jointRanges: Report["jointRanges"] = [];
  const numeric: [MetricCode, () => void][] = [
    ["t", () => keep(scoreTrajectory(ds))],
    ["r", () => {
      const r = scoreRobot(ds, units);
      jointRanges = r.jointRanges;
      keep(r.output);
    }],
    ["a", () => keep(scoreConsistency(ds))],
    ["c", () => keep(scoreCoverage(ds))],
  ];
  let done = 0;
  const total = wanted.size;
  for (const [code, score] of numeric) {
    if (!wanted.has(code)) continue;
    await progress.step(`Scoring ${METRIC_NAMES[code].toLowerCase()}`, at(0.05 + (0.9 * done++) / total));
    score();
    signal.throwIfAborted();
  }
  let visual: Pick<Report, "visualMap" | "descriptor" | "descriptorModel" | "sampleFrames" | "sampleFramesExplain"> = { visualMap: [], descriptor: null, descriptorModel: null, sampleFrames: [], sampleFramesExplain: null };
  if (wanted.has("h") || wanted.has("v")) {
    const start = at(0.05 + (0.9 * done) / total);
    const span = (scale * 0.9 * (Number(wanted.has("h")) + Number(wanted.has("v")))) / total;
    const tools = mediaTools(settings);
    const embedded = wanted.has("v") && evaluation.imageEncoderVersionId ? await embedWithEncoder(db, ds, { orgId: evaluation.orgId, versionId: evaluation.imageEncoderVersionId, framesPerEpisode: evaluation.framesPerEpisode, tools, blobs, progress, signal, start, span: span / 2 }) : null;
    const from = embedded ? start + span / 2 : start;
    await progress.step("Sampling frames for the visual metrics", from);
    const vision = await scoreVision(ds, {
      tools,
      // A fresh scoring decodes everything again; otherwise episode videos unchanged since an earlier scoring are not read again.
      cacheDir: evaluation.fresh ? undefined : path.join(evaluationCacheDir(settings), "episodes", evaluation.orgId),
      framesPerEpisode: evaluation.framesPerEpisode,
      signal,
      embeddings: embedded?.embeddings,
      sumOf: (file) => files?.[path.relative(dir, file).split(path.sep).join("/")]?.sha256,
      onProgress: (n, of) => void progress.set(from + ((start + span - from) * n) / Math.max(1, of), `Sampled ${n} of ${of} episode videos`),
    });
    // Cameras an imported dataset came without are not in its build; they are still findings.
    for (const key of missingVideos) {
      for (const e of ds.episodes) vision.h.findings.set(e.index, [...(vision.h.findings.get(e.index) ?? []), { flag: "missing-video", detail: `${key}: the dataset came without this camera's videos`, values: {} }]);
    }
    if (missingVideos.length) vision.h.result.notes.push(`The dataset came without the videos of ${missingVideos.join(" and ")}; they are not scored, and every episode is flagged`);
    if (!ds.cameras.length && missingVideos.length) {
      // It has cameras, only not their videos: h is not measured, for that reason rather than for having none.
      const why = `The dataset came without its cameras' videos (${missingVideos.join(", ")}), so there is no picture to judge.`;
      vision.h.result.summary = why;
      vision.h.result.notes = vision.h.result.notes.filter((n) => n !== NO_CAMERA);
      vision.h.result.subScores = vision.h.result.subScores.map((x) => ({ ...x, value: null, explain: why }));
    }
    if (vision.reused) await progress.log(`${vision.reused} of ${ds.episodes.length * ds.cameras.length} episode videos were unchanged since an earlier scoring; their samples were reused`);
    if (wanted.has("h")) keep(vision.h);
    if (wanted.has("v")) keep(vision.v);
    // The encoder is named only when its embeddings were the descriptors (a dataset whose videos gave no frame has none).
    const usedModel = embedded && embedded.embeddings.sums.size ? embedded.model : null;
    visual = { visualMap: vision.visualMap, descriptor: vision.descriptor, descriptorModel: usedModel, sampleFrames: vision.sampleFrames, sampleFramesExplain: vision.sampleFramesExplain };
  }
  const metrics = METRIC_CODES.filter((c) => results.has(c)).map((c) => results.get(c)!);
  const measured = metrics.filter((m) => m.score !== null).map((m) => m.score!);
  const overall = measured.length ? Number((measured.reduce((a, b) => a + b, 0) / measured.length).toFixed(4)) : null;
  const intervals = ds.episodes.flatMap((e) => e.timestamps.slice(1).map((t, i) => (t - e.timestamps[i]) * 1000)).filter(Number.isFinite);
  return reportSchema.parse({ metrics, overall, units, episodes: [...episodes.values()], jointRanges, intervalHistogram: histogram(intervals, 1000 / ds.fps), ...visual });
}

/** Embeds the sampled frames with the organisation's image encoder chosen for this scoring. */
async function embedWithEncoder(
  db: Db,
  ds: EvalDataset,
  opts: { orgId: string; versionId: string; framesPerEpisode: number; tools: MediaTools; blobs: BlobStore; progress: ProgressReporter; signal: AbortSignal; start: number; span: number },
): Promise<{ embeddings: EmbeddingSums & { descriptor: string }; model: DescriptorModel }> {
  const found = await findImageEncoder(db, { orgId: opts.orgId, versionId: opts.versionId }).catch((error: unknown) => {
    throw error instanceof AppError ? new AppError(error.code, `${error.message} (it was chosen as this scoring's image encoder; score again without it or with another)`) : error;
  });
  await opts.progress.step(`Loading the image encoder ${found.modelName} version ${found.number}`, opts.start);
  const encoder = await openImageEncoder(await readBlob(opts.blobs, found.sha256, opts.signal), found);
  try {
    const embeddings = await embedEpisodeFrames(ds, {
      tools: opts.tools,
      framesPerEpisode: opts.framesPerEpisode,
      encoder,
      width: found.width,
      height: found.height,
      signal: opts.signal,
      onProgress: (n, of) => void opts.progress.set(opts.start + (opts.span * n) / Math.max(1, of), `Embedded the frames of ${n} of ${of} episode videos with ${found.modelName}`),
    });
    const dims = [...embeddings.sums.values()][0]?.sum.length ?? found.dims ?? 0;
    return {
      embeddings: { ...embeddings, descriptor: describeModelDescriptor(found, opts.framesPerEpisode, dims || null) },
      model: { versionId: found.versionId, modelId: found.modelId, modelName: found.modelName, number: found.number, width: found.width, height: found.height, dims },
    };
  } finally {
    await encoder.release();
  }
}

async function readBlob(blobs: BlobStore, sha256: string, signal: AbortSignal): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of await blobs.get(sha256)) {
    signal.throwIfAborted();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Frame intervals in bins of a tenth of a frame period, up to four periods (the last bin holds the rest). */
function histogram(values: number[], periodMs: number): [number, number][] {
  const width = periodMs / 10;
  const bins = new Map<number, number>();
  for (const v of values) {
    const start = Math.min(Math.max(0, Math.floor(v / width)), 40) * width;
    bins.set(start, (bins.get(start) ?? 0) + 1);
  }
  return [...bins.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => [Number(s.toFixed(3)), n]);
}

const summarySelect = {
  id: true, datasetId: true, buildId: true, status: true, metrics: true, overall: true, scores: true, error: true, jobId: true, createdAt: true, finishedAt: true,
  sourceKind: true, sourceRef: true, sourceRevision: true, sourceVersion: true, dataset: { select: { repoId: true } },
} satisfies Prisma.DatasetEvaluationSelect;

type SummaryRow = Prisma.DatasetEvaluationGetPayload<{ select: typeof summarySelect }>;
const toSummary = ({ sourceKind, sourceRef, sourceRevision, sourceVersion, dataset, ...e }: SummaryRow) => ({
  ...e,
  scores: (e.scores ?? null) as Record<string, number | null> | null,
  source: dataset
    ? { kind: "dataset" as const, label: dataset.repoId, revision: null, version: e.buildId }
    : { kind: (sourceKind === "hub" ? "hub" : "folder") as "hub" | "folder", label: sourceRef ?? "", revision: sourceRevision, version: sourceVersion },
});

async function checkDataset(db: Db, orgId: string, datasetId: string): Promise<void> {
  if (!(await db.dataset.findFirst({ where: { id: datasetId, orgId }, select: { id: true } }))) throw new AppError("NOT_FOUND", "That dataset does not exist in this organisation");
}

export async function listEvaluations(db: Db, { orgId, datasetId }: { orgId: string; datasetId: string }) {
  await checkDataset(db, orgId, datasetId);
  return (await db.datasetEvaluation.findMany({ where: { orgId, datasetId }, orderBy: { createdAt: "desc" }, take: 50, select: summarySelect })).map(toSummary);
}

export async function getEvaluation(db: Db, { orgId, evaluationId }: { orgId: string; evaluationId: string }) {
  const e = await db.datasetEvaluation.findFirst({ where: { id: evaluationId, orgId }, select: { ...summarySelect, report: true, dataset: { select: { id: true, repoId: true, buildId: true, derivedFrom: true } } } });
  if (!e) throw new AppError("NOT_FOUND", "That evaluation does not exist in this organisation");
  const report = e.report ? reportSchema.parse(e.report) : null;
  const { report: _report, ...row } = e;
  const from = e.dataset?.derivedFrom as { evaluationId?: string } | null | undefined;
  return {
    ...toSummary(row),
    dataset: e.dataset ? { id: e.dataset.id, repoId: e.dataset.repoId, buildId: e.dataset.buildId } : null,
    report,
    // A folder or hub dataset is not Gantry's to change: the report describes the version it names.
    isCurrentBuild: e.dataset ? e.buildId === e.dataset.buildId : true,
    derivedFromEvaluationId: from?.evaluationId ?? null,
  };
}

/** Scorings of folders and hub datasets, newest first. */
export async function listExternalEvaluations(db: Db, { orgId }: { orgId: string }) {
  return (await db.datasetEvaluation.findMany({ where: { orgId, datasetId: null }, orderBy: { createdAt: "desc" }, take: 50, select: summarySelect })).map(toSummary);
}

/** The dataset's latest finished evaluation, or null. */
export async function latestEvaluation(db: Db, { orgId, datasetId }: { orgId: string; datasetId: string }) {
  await checkDataset(db, orgId, datasetId);
  const e = await db.datasetEvaluation.findFirst({ where: { orgId, datasetId, status: "succeeded" }, orderBy: { createdAt: "desc" }, select: summarySelect });
  return e ? toSummary(e) : null;
}
