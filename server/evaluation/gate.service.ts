import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { Prisma } from "../generated/prisma/client";
import { METRIC_CODES, METRIC_NAMES, reportSchema, type MetricCode } from "./evaluation.schemas";

// The quality gate: an organisation's minimum scores (overall and per metric, off by default)
// that a dataset's latest evaluation of its current build must meet before it is trained on.

const minimum = z.number().min(0).max(1);
export const qualityGateSchema = z.object({
  enabled: z.boolean().default(false),
  overall: minimum.nullable().default(null),
  metrics: z.partialRecord(z.enum(METRIC_CODES), minimum).default({}),
});
export type QualityGate = z.infer<typeof qualityGateSchema>;

export async function getQualityGate(db: Db, { orgId }: { orgId: string }): Promise<QualityGate> {
  const org = await db.org.findUnique({ where: { id: orgId }, select: { qualityGate: true } });
  const parsed = qualityGateSchema.safeParse(org?.qualityGate ?? {});
  return parsed.success ? parsed.data : qualityGateSchema.parse({});
}

export async function setQualityGate(db: Db, { actor, gate }: { actor: OrgActor; gate: QualityGate }): Promise<QualityGate> {
  await db.$transaction(async (tx) => {
    await tx.org.update({ where: { id: actor.orgId }, data: { qualityGate: gate as unknown as Prisma.InputJsonValue } });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "org.quality_gate", target: `org:${actor.orgId}`, data: gate });
  });
  return gate;
}

export interface GateVerdict {
  passed: boolean;
  /** What failed, in words ("Trajectory quality 0.41 is below the gate's 0.70"). */
  failures: string[];
  evaluationId: string | null;
}

/** Whether the dataset's latest evaluation of its current build meets the organisation's gate. */
export async function checkQualityGate(db: Db, { orgId, datasetId }: { orgId: string; datasetId: string }): Promise<GateVerdict> {
  const gate = await getQualityGate(db, { orgId });
  if (!gate.enabled) return { passed: true, failures: [], evaluationId: null };
  const dataset = await db.dataset.findFirst({ where: { id: datasetId, orgId }, select: { buildId: true, repoId: true } });
  if (!dataset) throw new AppError("NOT_FOUND", "That dataset does not exist in this organisation");
  const latest = await db.datasetEvaluation.findFirst({ where: { orgId, datasetId, status: "succeeded", buildId: dataset.buildId }, orderBy: { createdAt: "desc" } });
  if (!latest) return { passed: false, failures: [`${dataset.repoId} has no evaluation of its current episodes; score it first (Evaluate on its page)`], evaluationId: null };
  const scores = (latest.scores ?? {}) as Partial<Record<MetricCode, number | null>>;
  // A metric scored but not measurable (h on a dataset without cameras) says why in its summary.
  const report = reportSchema.safeParse(latest.report);
  const whyNot = (code: MetricCode) => (report.success ? report.data.metrics.find((m) => m.code === code && m.score === null)?.summary : undefined);
  const failures: string[] = [];
  if (gate.overall !== null && (latest.overall ?? 0) < gate.overall) failures.push(`Overall ${latest.overall === null ? "not measurable" : latest.overall.toFixed(2)} is below the gate's ${gate.overall.toFixed(2)}`);
  for (const code of METRIC_CODES) {
    const min = gate.metrics[code];
    if (min === undefined) continue;
    const score = scores[code];
    if (score === undefined || score === null) {
      const why = score === null ? whyNot(code) : undefined;
      failures.push(`${METRIC_NAMES[code]} was not measured${why ? ` (${why.charAt(0).toLowerCase()}${why.slice(1).replace(/\.$/, "")})` : ""}, and the gate asks for ${min.toFixed(2)}`);
    }
    else if (score < min) failures.push(`${METRIC_NAMES[code]} ${score.toFixed(2)} is below the gate's ${min.toFixed(2)}`);
  }
  return { passed: failures.length === 0, failures, evaluationId: latest.id };
}
