import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { startEvaluation } from "./evaluation.service";
import { startExternalEvaluation } from "./external.service";
import { externalSourceSchema, METRIC_CODES, METRIC_NAMES, type MetricCode } from "./evaluation.schemas";

// The earlier DataBench API: `GET /api/databench/metrics` and `POST /api/databench/evaluate`
// with its request (`dataset`, `metrics` "a,v,h,t,c,r", `subset`, `token`) and its scores under
// the same keys. Asynchronous by default (an evaluation id and a status URL); `wait: true`
// keeps the earlier synchronous answer, up to `timeout` seconds. A `dataset` that is not one of
// the organisation's is taken, as the earlier API took every name, for a dataset on the hub
// (HF_ENDPOINT), optionally `owner/name@revision`.

export const compatEvaluateInput = z.object({
  dataset: z.string().trim().min(1, "name the dataset by its repo id").max(200),
  metrics: z
    .string()
    .trim()
    .default(METRIC_CODES.join(","))
    .transform((s, ctx) => {
      const codes = s.split(",").map((c) => c.trim()).filter(Boolean);
      const bad = codes.filter((c) => !(METRIC_CODES as readonly string[]).includes(c));
      if (bad.length || !codes.length) ctx.addIssue({ code: "custom", message: `must be metric codes from ${METRIC_CODES.join(",")}${bad.length ? `; ${bad.join(", ")} is not one` : ""}` });
      return codes as MetricCode[];
    }),
  /** Frames sampled per episode for the visual metrics (the earlier subset of frames). */
  subset: z.number().int().min(1).max(32).optional(),
  /** The earlier API's Hugging Face token: not needed for a dataset Gantry holds, never stored. */
  token: z.string().max(4096).optional(),
  wait: z.boolean().default(false),
  timeout: z.number().int().min(1).max(3600).default(3600),
});

export function compatMetrics() {
  return { metrics: METRIC_CODES.map((code) => ({ code, name: METRIC_NAMES[code] })) };
}

export async function compatStatus(db: Db, { orgId, evaluationId }: { orgId: string; evaluationId: string }) {
  const e = await db.datasetEvaluation.findFirst({ where: { id: evaluationId, orgId }, include: { dataset: { select: { repoId: true } } } });
  if (!e) throw new AppError("NOT_FOUND", "No such evaluation in this organisation");
  const scores = (e.scores ?? {}) as Record<string, number | null>;
  return { evaluation_id: e.id, dataset: e.dataset?.repoId ?? e.sourceRef ?? "", status: e.status, ...(e.status === "succeeded" ? { results: scores, overall: e.overall } : {}), ...(e.error ? { error: e.error } : {}), status_url: `/api/databench/evaluations/${e.id}` };
}

export async function compatEvaluate(db: Db, { actor, input, settings }: { actor: OrgActor; input: z.output<typeof compatEvaluateInput>; settings: { datasetImportRoots: string[]; HF_ENDPOINT: string } }) {
  const dataset = await db.dataset.findUnique({ where: { orgId_repoId: { orgId: actor.orgId, repoId: input.dataset } }, select: { id: true } });
  const framesPerEpisode = input.subset ?? 6;
  let started: { evaluationId: string; jobId: string };
  if (dataset) {
    started = await startEvaluation(db, { actor, input: { datasetId: dataset.id, metrics: input.metrics, framesPerEpisode } });
  } else {
    const [repo, revision] = input.dataset.split("@");
    if (!/^[^/\s]+\/[^/\s]+$/.test(repo)) throw new AppError("NOT_FOUND", `No dataset ${input.dataset} in this organisation, and it is not a hub dataset id (owner/name); import it first (Datasets → Import)`);
    const source = externalSourceSchema.safeParse({ kind: "hub", repo, revision: revision ?? "main" });
    if (!source.success) throw new AppError("BAD_REQUEST", `${input.dataset} is not a dataset in this organisation, nor a hub dataset id: ${source.error.issues[0].message}`);
    started = await startExternalEvaluation(db, { actor, input: { source: source.data, metrics: input.metrics, framesPerEpisode }, settings });
  }
  const { evaluationId, jobId } = started;
  if (!input.wait) return { ...(await compatStatus(db, { orgId: actor.orgId, evaluationId })), job_id: jobId };
  const deadline = Date.now() + input.timeout * 1000;
  for (;;) {
    const status = await compatStatus(db, { orgId: actor.orgId, evaluationId });
    if (["succeeded", "failed", "cancelled"].includes(status.status)) return { ...status, job_id: jobId };
    if (Date.now() > deadline) throw new AppError("CONFLICT", `The evaluation did not finish within ${input.timeout} s; it goes on — follow ${status.status_url}`);
    await sleep(500);
  }
}
