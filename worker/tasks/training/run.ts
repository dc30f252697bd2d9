import { env } from "../../../server/env";
import { trainingRunJob } from "../../../server/jobs/catalog";
import { blobStore } from "../../../server/storage/blobs";
import { driveTrainingRun } from "../../../server/training/run-driver.service";
import { defineTask } from "../../define-task";

export default defineTask(trainingRunJob, (payload, { db, progress, signal }) => driveTrainingRun(db, { runId: payload.runId, settings: env(), blobs: blobStore(), progress, signal }));
