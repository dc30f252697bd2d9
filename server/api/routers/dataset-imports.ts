import { z } from "zod";
import { discardStagedInput, importFolderInput, importInspectionSchema, importStagedInput, inspectFolderInput } from "../../datasets/datasets.schemas";
import { importDatasetFromFolder, inspectImportFolder } from "../../datasets/import.service";
import { discardStaged, importStaged } from "../../datasets/upload-import.service";
import { env } from "../../env";
import { blobStore } from "../../storage/blobs";
import { orgProcedure, router } from "../trpc";

// Importing LeRobot datasets made elsewhere: look at one first (which features are the action,
// the state and the cameras), then import it with the mapping the person confirmed. Archives
// are uploaded to /api/datasets/import; one whose mapping needs confirming waits, staged.

const started = z.object({ datasetId: z.uuid(), jobId: z.uuid() });

export const datasetImportsRouter = router({
  /** The features of a dataset in a folder on the server and the mapping proposed for them. */
  inspectFolder: orgProcedure("operator").input(inspectFolderInput).output(importInspectionSchema).query(({ input }) => inspectImportFolder({ input, settings: env() })),
  /** Imports a LeRobot v2.0, v2.1 or v3.0 dataset from a folder on the server (inside DATASET_IMPORT_ROOTS). */
  importFolder: orgProcedure("operator").input(importFolderInput).output(started).mutation(({ ctx, input }) => importDatasetFromFolder(ctx.db, { actor: ctx.orgActor, input, settings: env() })),
  /** Imports an uploaded archive that waits for its mapping, with the mapping confirmed. */
  importStaged: orgProcedure("operator").input(importStagedInput).output(started).mutation(({ ctx, input }) => importStaged(ctx.db, { actor: ctx.orgActor, input, settings: env(), blobs: blobStore() })),
  /** Throws away an uploaded archive that waits for its mapping. */
  discardStaged: orgProcedure("operator")
    .input(discardStagedInput)
    .output(z.object({ stagingId: z.string() }))
    .mutation(({ ctx, input }) => discardStaged(ctx.db, { actor: ctx.orgActor, input, settings: env() })),
});
