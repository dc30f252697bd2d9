import { exportDatasetToBucket } from "../../../server/datasets/bucket-export.service";
import { blobStore, s3BucketSettings } from "../../../server/storage/blobs";
import { env } from "../../../server/env";
import { exportDatasetJob } from "../../../server/jobs/catalog";
import { defineTask } from "../../define-task";

export default defineTask(exportDatasetJob, (payload, { db, progress, signal, job }) =>
  exportDatasetToBucket(db, { orgId: job.orgId, datasetId: payload.datasetId, folder: payload.folder, target: s3BucketSettings(env()), settings: env(), blobs: blobStore(), progress, signal }),
);
