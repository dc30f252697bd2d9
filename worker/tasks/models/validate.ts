import { env } from "../../../server/env";
import { validateModelJob } from "../../../server/jobs/catalog";
import { validateModelVersion } from "../../../server/models/version-validation.service";
import { validateOnnxFile } from "../../../server/models/validation.service";
import { blobStore } from "../../../server/storage/blobs";
import { defineTask } from "../../define-task";

export default defineTask(validateModelJob, (payload, { db, progress, signal, job }) =>
  validateModelVersion(db, {
    ...payload,
    orgId: job.orgId,
    runs: payload.runs ?? env().MODEL_VALIDATION_RUNS,
    timeoutMs: env().MODEL_VALIDATION_TIMEOUT * 1000,
    blobs: blobStore(),
    validate: validateOnnxFile,
    progress,
    signal,
  }),
);
