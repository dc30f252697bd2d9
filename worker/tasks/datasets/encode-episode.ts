import { commitEpisode } from "../../../server/datasets/builder.service";
import { encodeEpisode } from "../../../server/datasets/encode.service";
import { env } from "../../../server/env";
import { blobStore } from "../../../server/storage/blobs";
import { encodeEpisodeJob } from "../../../server/jobs/catalog";
import { defineTask } from "../../define-task";

export default defineTask(encodeEpisodeJob, (payload, { db, progress, signal, job }) =>
  encodeEpisode(db, {
    episodeId: payload.episodeId,
    settings: env(),
    progress,
    signal,
    isLastAttempt: job.attempt >= encodeEpisodeJob.maxAttempts,
    blobs: blobStore(),
    commit: (db, episodeId, signal) => commitEpisode(db, { episodeId, settings: env(), blobs: blobStore(), signal }),
  }),
);
