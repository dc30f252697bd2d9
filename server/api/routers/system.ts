import { z } from "zod";
import { env } from "../../env";
import { checkHealth } from "../../system/health.service";
import { gettingStartedSchema, healthSchema, instanceSchema, overviewSchema, startSelftestInput } from "../../system/system.schemas";
import { getGettingStarted } from "../../system/getting-started.service";
import { startSelftest } from "../../system/selftest.service";
import { describeInstance, getOverview } from "../../system/system.service";
import { metricsFiguresSchema } from "../../metrics/metrics.schemas";
import { getHealthFigures } from "../../metrics/metrics.service";
import { authedProcedure, orgProcedure, router } from "../trpc";

export const systemRouter = router({
  health: orgProcedure("viewer").output(healthSchema).query(({ ctx }) => checkHealth(ctx.db, { staleAfterMs: env().WORKER_STALE_AFTER_MS })),
  overview: orgProcedure("viewer").output(overviewSchema).query(({ ctx }) => getOverview(ctx.db, { orgId: ctx.orgActor.orgId, staleAfterMs: env().WORKER_STALE_AFTER_MS })),
  gettingStarted: orgProcedure("viewer").output(gettingStartedSchema).query(({ ctx }) => getGettingStarted(ctx.db, { orgId: ctx.orgActor.orgId })),
  /** Host names and paths are for instance admins, not every organisation's owner. */
  instance: authedProcedure.output(instanceSchema).query(({ ctx }) => describeInstance(ctx.db, { userId: ctx.actor.userId, settings: env() })),
  /** Jobs, queue, durations, throughput and per-process figures: the health page, for instance admins. */
  metrics: authedProcedure.output(metricsFiguresSchema).query(({ ctx }) => getHealthFigures(ctx.db, { userId: ctx.actor.userId, settings: env() })),
  startSelftest: orgProcedure("operator").input(startSelftestInput).output(z.object({ jobId: z.uuid() })).mutation(({ ctx, input }) => startSelftest(ctx.db, { actor: ctx.orgActor, input })),
});
