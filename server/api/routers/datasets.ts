import { z } from "zod";
import {
  datasetDetailSchema,
  datasetIdInput,
  datasetSummarySchema,
  episodeDetailSchema,
  episodeIdInput,
  episodeSummarySchema,
  renameTaskInput,
} from "../../datasets/datasets.schemas";
import { deleteDataset } from "../../datasets/delete.service";
import { deleteEpisode, getDataset, getEpisode, listDatasets, listEpisodes, renameTask, restoreEpisode, retryEpisode } from "../../datasets/datasets.service";
import { bucketExportInput, bucketExportStatus, bucketExportStatusSchema, startBucketExport } from "../../datasets/bucket-export.service";
import { env } from "../../env";
import { blobStore, s3BucketSettings } from "../../storage/blobs";
import { orgProcedure, router } from "../trpc";

const idOutput = z.object({ id: z.uuid() });

export const datasetsRouter = router({
  list: orgProcedure("viewer").output(z.array(datasetSummarySchema)).query(({ ctx }) => listDatasets(ctx.db, { orgId: ctx.orgActor.orgId })),
  get: orgProcedure("viewer").input(datasetIdInput).output(datasetDetailSchema).query(({ ctx, input }) => getDataset(ctx.db, { orgId: ctx.orgActor.orgId, datasetId: input.datasetId })),
  /** A dataset's episodes (deleted ones last), with their encoding status and progress. */
  episodes: orgProcedure("viewer").input(datasetIdInput).output(z.array(episodeSummarySchema)).query(({ ctx, input }) => listEpisodes(ctx.db, { orgId: ctx.orgActor.orgId, datasetId: input.datasetId })),
  /** One episode with its per-frame state and action (for the plots) and its video links. */
  episode: orgProcedure("viewer").input(episodeIdInput).output(episodeDetailSchema).query(({ ctx, input }) => getEpisode(ctx.db, { orgId: ctx.orgActor.orgId, episodeId: input.episodeId, settings: env(), blobs: blobStore() })),
  deleteEpisode: orgProcedure("operator").input(episodeIdInput).output(idOutput).mutation(({ ctx, input }) => deleteEpisode(ctx.db, { actor: ctx.orgActor, episodeId: input.episodeId, settings: env(), blobs: blobStore() })),
  restoreEpisode: orgProcedure("operator").input(episodeIdInput).output(idOutput).mutation(({ ctx, input }) => restoreEpisode(ctx.db, { actor: ctx.orgActor, episodeId: input.episodeId, settings: env(), blobs: blobStore() })),
  renameTask: orgProcedure("operator").input(renameTaskInput).output(z.object({ episodes: z.number() })).mutation(({ ctx, input }) => renameTask(ctx.db, { actor: ctx.orgActor, input, settings: env(), blobs: blobStore() })),
  retryEpisode: orgProcedure("operator")
    .input(episodeIdInput)
    .output(z.object({ episodeId: z.uuid(), jobId: z.uuid() }))
    .mutation(({ ctx, input }) => retryEpisode(ctx.db, { actor: ctx.orgActor, episodeId: input.episodeId, settings: env(), blobs: blobStore() })),
  /** The dataset's latest export to the instance's bucket, and whether there is a bucket. */
  bucketExport: orgProcedure("viewer").input(datasetIdInput).output(bucketExportStatusSchema).query(({ ctx, input }) => bucketExportStatus(ctx.db, { orgId: ctx.orgActor.orgId, datasetId: input.datasetId, target: s3BucketSettings(env()) })),
  /** Writes the build to the bucket as a plain LeRobot v3.0 tree (a job). */
  exportToBucket: orgProcedure("operator")
    .input(bucketExportInput)
    .output(z.object({ jobId: z.uuid() }))
    .mutation(({ ctx, input }) => startBucketExport(ctx.db, { actor: ctx.orgActor, input, target: s3BucketSettings(env()) })),
  /** Deletes the dataset, its episodes and its files (refused while it is encoding or importing). */
  delete: orgProcedure("admin")
    .input(datasetIdInput)
    .output(z.object({ id: z.uuid(), repoId: z.string(), episodes: z.number(), left: z.array(z.string()) }))
    .mutation(({ ctx, input }) => deleteDataset(ctx.db, { actor: ctx.orgActor, datasetId: input.datasetId, settings: env() })),
});
