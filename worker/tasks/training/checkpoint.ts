import { trainingCheckpointJob } from "../../../server/jobs/catalog";
import { blobStore } from "../../../server/storage/blobs";
import { pullCheckpoint } from "../../../server/training/checkpoints.service";
import { defineTask } from "../../define-task";

export default defineTask(trainingCheckpointJob, (payload, { db, progress, signal }) => pullCheckpoint(db, { ...payload, blobs: blobStore(), progress, signal }));
