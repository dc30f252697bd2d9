import { z } from "zod";
import { env } from "../../env";
import {
  createEndpointInput,
  endpointDetailSchema,
  endpointIdInput,
  endpointViewSchema,
  servingHardwareSchema,
  tryEndpointInput,
  tryEndpointResultSchema,
  updateEndpointVersionInput,
} from "../../serving/endpoints.schemas";
import { createEndpoint, deleteEndpoint, getEndpointDetail, listEndpoints, undeployEndpoint, updateEndpointVersion } from "../../serving/endpoints.service";
import { servingHardware } from "../../serving/hardware.service";
import { serveInternalUrl, tryEndpoint } from "../../serving/try-it.service";
import { endpointRequestStatsInput, endpointRequestStatsSchema } from "../../serving/request-stats.schemas";
import { getEndpointRequestStats } from "../../serving/request-stats.service";
import { orgProcedure, router } from "../trpc";

export const endpointsRouter = router({
  list: orgProcedure("viewer").output(z.array(endpointViewSchema)).query(({ ctx }) => listEndpoints(ctx.db, ctx.orgActor)),
  get: orgProcedure("viewer")
    .input(endpointIdInput)
    .output(endpointDetailSchema)
    .query(({ ctx, input }) => getEndpointDetail(ctx.db, { actor: ctx.orgActor, endpointId: input.endpointId, serveUrl: env().SERVE_PUBLIC_URL })),
  /** Requests per minute, errors and latency percentiles, from what the model server recorded. */
  stats: orgProcedure("viewer")
    .input(endpointRequestStatsInput)
    .output(endpointRequestStatsSchema)
    .query(({ ctx, input }) => getEndpointRequestStats(ctx.db, { actor: ctx.orgActor, endpointId: input.endpointId, minutes: input.minutes })),
  /** The try-it form: one request through the real model server, as the signed-in person. */
  tryIt: orgProcedure("viewer")
    .input(tryEndpointInput)
    .output(tryEndpointResultSchema)
    .mutation(({ ctx, input }) =>
      tryEndpoint(ctx.db, { actor: ctx.orgActor, endpointId: input.endpointId, inputs: input.inputs, secret: env().AUTH_SECRET, serveUrl: serveInternalUrl(env()) }),
    ),
  hardware: orgProcedure("viewer").output(servingHardwareSchema).query(() => servingHardware()),
  /** The wizard's last step: records the endpoint and queues its deploy job. */
  create: orgProcedure("operator")
    .input(createEndpointInput)
    .output(endpointViewSchema.extend({ jobId: z.uuid() }))
    .mutation(({ ctx, input }) => createEndpoint(ctx.db, { actor: ctx.orgActor, input })),
  changeVersion: orgProcedure("operator")
    .input(updateEndpointVersionInput)
    .output(endpointViewSchema)
    .mutation(({ ctx, input }) => updateEndpointVersion(ctx.db, { actor: ctx.orgActor, input })),
  undeploy: orgProcedure("operator").input(endpointIdInput).output(endpointViewSchema).mutation(({ ctx, input }) => undeployEndpoint(ctx.db, { actor: ctx.orgActor, endpointId: input.endpointId })),
  delete: orgProcedure("operator").input(endpointIdInput).output(z.object({ id: z.uuid() })).mutation(({ ctx, input }) => deleteEndpoint(ctx.db, { actor: ctx.orgActor, endpointId: input.endpointId })),
});
