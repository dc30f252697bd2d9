import { env } from "../../../server/env";
import { fetchModelJob } from "../../../server/jobs/catalog";
import { fetchModelVersion } from "../../../server/models/sources.service";
import { blobStore } from "../../../server/storage/blobs";
import { defineTask } from "../../define-task";

export default defineTask(fetchModelJob, (payload, { db, progress, signal, job }) =>
  fetchModelVersion(db, {
    ...payload,
    orgId: job.orgId,
    createdById: job.createdById,
    blobs: blobStore(),
    secretKey: env().ENCRYPTION_KEY,
    cacheDir: env().HUGGINGFACE_CACHE_DIR,
    timeoutMs: env().MAX_DOWNLOAD_TIMEOUT * 1000,
    maxBytes: env().MODEL_MAX_UPLOAD_BYTES,
    isLastAttempt: job.attempt >= fetchModelJob.maxAttempts,
    progress,
    signal,
  }),
);
