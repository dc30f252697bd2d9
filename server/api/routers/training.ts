import { tracked } from "@trpc/server";
import { z } from "zod";
import { streamAccessCheck } from "../../auth/request-actor";
import { openRunLogStream } from "../../training/log-stream";
import { cancelRun, getRun, listRuns, readRunLog, readRunMetrics, restartRun, startRun } from "../../training/runs.service";
import { requestCheckpointPull } from "../../training/checkpoints.service";
import { createTarget, deleteTarget, listTargets, testTarget } from "../../training/targets.service";
import {
  createRunInput,
  createTargetInput,
  pullCheckpointInput,
  runDetailSchema,
  runIdInput,
  runLogInput,
  runLogSchema,
  runMetricsSchema,
  runSummarySchema,
  targetFactsSchema,
  targetIdInput,
  targetSummarySchema,
} from "../../training/training.schemas";
import { orgProcedure, router } from "../trpc";

// Viewers read; operators start, cancel, resume and retry runs; admins manage targets (their
// credentials and host keys).
export const trainingRouter = router({
  targets: orgProcedure("viewer").output(z.array(targetSummarySchema)).query(({ ctx }) => listTargets(ctx.db, { orgId: ctx.orgActor.orgId })),
  createTarget: orgProcedure("admin").input(createTargetInput).output(z.object({ id: z.uuid() })).mutation(({ ctx, input }) => createTarget(ctx.db, { actor: ctx.orgActor, input })),
  deleteTarget: orgProcedure("admin").input(targetIdInput).output(z.object({ id: z.uuid() })).mutation(({ ctx, input }) => deleteTarget(ctx.db, { actor: ctx.orgActor, targetId: input.targetId })),
  /** Pins the host key on first contact, so it is an admin's call. */
  testTarget: orgProcedure("admin").input(targetIdInput).output(targetFactsSchema).mutation(({ ctx, input }) => testTarget(ctx.db, { actor: ctx.orgActor, targetId: input.targetId })),

  runs: orgProcedure("viewer").input(z.object({ datasetId: z.uuid().optional() }).default({})).output(z.array(runSummarySchema)).query(({ ctx, input }) => listRuns(ctx.db, { orgId: ctx.orgActor.orgId, datasetId: input.datasetId })),
  run: orgProcedure("viewer").input(runIdInput).output(runDetailSchema).query(({ ctx, input }) => getRun(ctx.db, { orgId: ctx.orgActor.orgId, runId: input.runId })),
  log: orgProcedure("viewer").input(runLogInput).output(runLogSchema).query(({ ctx, input }) => readRunLog(ctx.db, { orgId: ctx.orgActor.orgId, input })),
  /** The run's log, live: each piece as the worker stores it, resumable by its byte offset. */
  onLog: orgProcedure("viewer")
    .input(z.object({ runId: z.uuid(), attempt: z.number().int().min(1).optional(), lastEventId: z.string().regex(/^-?\d{1,15}$/).nullish() }))
    .subscription(async function* ({ ctx, input, signal }) {
      const pieces = await openRunLogStream({ db: ctx.db, hub: ctx.hub, orgId: ctx.orgActor.orgId, runId: input.runId, attempt: input.attempt, after: Number(input.lastEventId ?? -1), signal: signal!, ...streamAccessCheck(ctx.db, ctx.hub, ctx.orgActor) });
      for await (const piece of pieces) yield tracked(String(piece.offset), piece);
    }),
  metrics: orgProcedure("viewer").input(runIdInput).output(runMetricsSchema).query(({ ctx, input }) => readRunMetrics(ctx.db, { orgId: ctx.orgActor.orgId, runId: input.runId })),
  startRun: orgProcedure("operator").input(createRunInput).output(z.object({ runId: z.uuid(), jobId: z.uuid() })).mutation(({ ctx, input }) => startRun(ctx.db, { actor: ctx.orgActor, input })),
  cancelRun: orgProcedure("operator").input(runIdInput).output(z.object({ runId: z.uuid() })).mutation(({ ctx, input }) => cancelRun(ctx.db, { actor: ctx.orgActor, runId: input.runId })),
  resumeRun: orgProcedure("operator").input(runIdInput).output(z.object({ runId: z.uuid(), jobId: z.uuid() })).mutation(({ ctx, input }) => restartRun(ctx.db, { actor: ctx.orgActor, runId: input.runId, mode: "resume" })),
  retryRun: orgProcedure("operator").input(runIdInput).output(z.object({ runId: z.uuid(), jobId: z.uuid() })).mutation(({ ctx, input }) => restartRun(ctx.db, { actor: ctx.orgActor, runId: input.runId, mode: "retry" })),
  /** Brings home any checkpoint the run saved, not only its last. */
  pullCheckpoint: orgProcedure("operator").input(pullCheckpointInput).output(z.object({ jobId: z.uuid().nullable(), versionId: z.uuid().nullable() })).mutation(({ ctx, input }) => requestCheckpointPull(ctx.db, { actor: ctx.orgActor, ...input })),
});
