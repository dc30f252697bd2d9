import { z } from "zod";
import { env } from "../../env";
import {
  addVersionFromHubInput,
  addVersionFromUrlInput,
  addVersionResultSchema,
  createModelInput,
  modelDetailSchema,
  modelIdInput,
  modelSummarySchema,
  revalidateInput,
  updateModelInput,
} from "../../models/models.schemas";
import { addVersionFromHub, addVersionFromUrl, createModel, deleteModel, getModel, listModels, revalidateVersion, updateModel } from "../../models/registry.service";
import { blobStore } from "../../storage/blobs";
import { orgProcedure, router } from "../trpc";

const idOutput = z.object({ id: z.uuid() });

export const modelsRouter = router({
  list: orgProcedure("viewer").output(z.array(modelSummarySchema)).query(({ ctx }) => listModels(ctx.db, { orgId: ctx.orgActor.orgId })),
  get: orgProcedure("viewer").input(modelIdInput).output(modelDetailSchema).query(({ ctx, input }) => getModel(ctx.db, { orgId: ctx.orgActor.orgId, modelId: input.modelId })),
  create: orgProcedure("operator").input(createModelInput).output(idOutput).mutation(({ ctx, input }) => createModel(ctx.db, { actor: ctx.orgActor, input })),
  update: orgProcedure("operator").input(updateModelInput).output(idOutput).mutation(({ ctx, input }) => updateModel(ctx.db, { actor: ctx.orgActor, input })),
  delete: orgProcedure("admin").input(modelIdInput).output(idOutput).mutation(({ ctx, input }) => deleteModel(ctx.db, { actor: ctx.orgActor, modelId: input.modelId })),
  addVersionFromUrl: orgProcedure("operator")
    .input(addVersionFromUrlInput)
    .output(addVersionResultSchema)
    .mutation(({ ctx, input }) => addVersionFromUrl(ctx.db, { actor: ctx.orgActor, input })),
  /** The token is used for the download only: it is never stored and never returned. */
  addVersionFromHub: orgProcedure("operator")
    .input(addVersionFromHubInput)
    .output(addVersionResultSchema)
    .mutation(({ ctx, input }) =>
      addVersionFromHub(ctx.db, { actor: ctx.orgActor, input, endpoint: env().HF_ENDPOINT, blobs: blobStore(), secretKey: env().ENCRYPTION_KEY }),
    ),
  revalidate: orgProcedure("operator")
    .input(revalidateInput)
    .output(z.object({ versionId: z.uuid(), jobId: z.uuid() }))
    .mutation(({ ctx, input }) => revalidateVersion(ctx.db, { actor: ctx.orgActor, input, blobs: blobStore() })),
});
