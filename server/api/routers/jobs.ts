import { tracked } from "@trpc/server";
import { z } from "zod";
import { env } from "../../env";
import { jobEventSchema, jobIdInput, jobSchema, listJobsInput } from "../../jobs/jobs.schemas";
import { cancelJob, getJob, listJobEvents, listJobs, retryJob } from "../../jobs/jobs.service";
import { openJobEventStream, openOrgEventStream } from "../../jobs/stream";
import { streamAccessCheck } from "../../auth/request-actor";
import type { OrgActor } from "../../auth/roles";
import type { Db } from "../../db";
import type { RealtimeHub } from "../../jobs/realtime";
import { orgProcedure, router } from "../trpc";

const lastEventId = z.string().regex(/^\d{1,15}$/).nullish();

export const jobsRouter = router({
  list: orgProcedure("viewer")
    .input(listJobsInput)
    .output(z.object({ items: z.array(jobSchema), nextCursor: z.string().nullable() }))
    .query(({ ctx, input }) => listJobs(ctx.db, { orgId: ctx.orgActor.orgId, input })),
  get: orgProcedure("viewer").input(jobIdInput).output(jobSchema).query(({ ctx, input }) => getJob(ctx.db, { orgId: ctx.orgActor.orgId, jobId: input.jobId })),
  events: orgProcedure("viewer").input(jobIdInput).output(z.array(jobEventSchema)).query(({ ctx, input }) => listJobEvents(ctx.db, { orgId: ctx.orgActor.orgId, jobId: input.jobId })),
  cancel: orgProcedure("operator").input(jobIdInput).output(jobSchema).mutation(({ ctx, input }) => cancelJob(ctx.db, { actor: ctx.orgActor, jobId: input.jobId })),
  retry: orgProcedure("operator").input(jobIdInput).output(jobSchema).mutation(({ ctx, input }) => retryJob(ctx.db, { actor: ctx.orgActor, jobId: input.jobId })),

  /** One job's events, resumable: the client's last seen seq comes back as lastEventId. */
  onJobEvents: orgProcedure("viewer")
    .input(jobIdInput.extend({ lastEventId }))
    .subscription(async function* ({ ctx, input, signal }) {
      const events = await openJobEventStream({ ...streamOptions(ctx, signal!), jobId: input.jobId, afterSeq: Number(input.lastEventId ?? 0) });
      for await (const event of events) yield tracked(String(event.seq), event);
    }),

  /** Every job event of the organisation, resumable by the organisation's event number. */
  onOrgEvents: orgProcedure("viewer")
    .input(z.object({ lastEventId }).optional())
    .subscription(async function* ({ ctx, input, signal }) {
      const events = await openOrgEventStream({ ...streamOptions(ctx, signal!), afterOrgSeq: input?.lastEventId ? Number(input.lastEventId) : null });
      for await (const event of events) yield tracked(String(event.orgSeq), event);
    }),
});

function streamOptions(ctx: { db: Db; hub: RealtimeHub; orgActor: OrgActor }, signal: AbortSignal) {
  return { db: ctx.db, hub: ctx.hub, orgId: ctx.orgActor.orgId, signal, maxBuffered: env().SSE_MAX_BUFFERED_EVENTS, ...streamAccessCheck(ctx.db, ctx.hub, ctx.orgActor) };
}
