import { z } from "zod";
import { getEvaluation, latestEvaluation, listEvaluations, listExternalEvaluations, startEvaluation } from "../../evaluation/evaluation.service";
import { datasetIdInput, evaluationDetailSchema, evaluationIdInput, evaluationSummarySchema, imageEncoderSchema, startEvaluationInput, startExternalEvaluationInput } from "../../evaluation/evaluation.schemas";
import { startExternalEvaluation } from "../../evaluation/external.service";
import { listImageEncoders } from "../../evaluation/image-encoder";
import { env } from "../../env";
import { blobStore } from "../../storage/blobs";
import { deriveDatasetInput, excludeFlaggedEpisodes } from "../../evaluation/derive.service";
import { getQualityGate, qualityGateSchema, setQualityGate } from "../../evaluation/gate.service";
import { orgProcedure, router } from "../trpc";

// Dataset scoring: viewers read reports; operators start a scoring; admins set the quality gate.
export const evaluationRouter = router({
  start: orgProcedure("operator").input(startEvaluationInput).output(z.object({ evaluationId: z.uuid(), jobId: z.uuid() })).mutation(({ ctx, input }) => startEvaluation(ctx.db, { actor: ctx.orgActor, input })),
  list: orgProcedure("viewer").input(datasetIdInput).output(z.array(evaluationSummarySchema)).query(({ ctx, input }) => listEvaluations(ctx.db, { orgId: ctx.orgActor.orgId, datasetId: input.datasetId })),
  latest: orgProcedure("viewer").input(datasetIdInput).output(evaluationSummarySchema.nullable()).query(({ ctx, input }) => latestEvaluation(ctx.db, { orgId: ctx.orgActor.orgId, datasetId: input.datasetId })),
  /** The organisation's model versions that can make v's visual descriptors (Evaluate offers them). */
  imageEncoders: orgProcedure("viewer").output(z.array(imageEncoderSchema)).query(({ ctx }) => listImageEncoders(ctx.db, { orgId: ctx.orgActor.orgId })),
  /** A LeRobot folder on the server (inside the import roots) or a hub dataset id: a dataset Gantry does not hold. */
  startExternal: orgProcedure("operator").input(startExternalEvaluationInput).output(z.object({ evaluationId: z.uuid(), jobId: z.uuid() })).mutation(({ ctx, input }) => startExternalEvaluation(ctx.db, { actor: ctx.orgActor, input, settings: env() })),
  listExternal: orgProcedure("viewer").output(z.array(evaluationSummarySchema)).query(({ ctx }) => listExternalEvaluations(ctx.db, { orgId: ctx.orgActor.orgId })),
  get: orgProcedure("viewer").input(evaluationIdInput).output(evaluationDetailSchema).query(({ ctx, input }) => getEvaluation(ctx.db, { orgId: ctx.orgActor.orgId, evaluationId: input.evaluationId })),
  /** A new dataset without the episodes the evaluation flags; nothing is deleted. */
  excludeFlagged: orgProcedure("operator").input(deriveDatasetInput).output(z.object({ datasetId: z.uuid(), kept: z.number(), excluded: z.array(z.number()) })).mutation(({ ctx, input }) => excludeFlaggedEpisodes(ctx.db, { actor: ctx.orgActor, input, settings: env(), blobs: blobStore() })),
  gate: orgProcedure("viewer").output(qualityGateSchema).query(({ ctx }) => getQualityGate(ctx.db, { orgId: ctx.orgActor.orgId })),
  setGate: orgProcedure("admin").input(qualityGateSchema).output(qualityGateSchema).mutation(({ ctx, input }) => setQualityGate(ctx.db, { actor: ctx.orgActor, gate: input })),
});
