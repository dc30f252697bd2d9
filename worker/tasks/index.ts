import fetchModel from "./models/fetch";
import deployEndpoint from "./serving/deploy";
import validateModel from "./models/validate";
import selftest from "./system/selftest";
import encodeEpisode from "./datasets/encode-episode";
import deployDevice from "./fleet/deploy-device";
import { healthCheckTask } from "./fleet/health-check";
import { releaseCaptureBlobsTask } from "./captures/release-blobs";
import { sweepBlobsTask } from "./storage/sweep-blobs";
import { thinCaptureJointsTask } from "./captures/thin-joints";
import { storeDatasetFilesTask } from "./datasets/store-files";
import importDataset from "./datasets/import";
import trainingRun from "./training/run";
import trainingCheckpoint from "./training/checkpoint";
import evaluateDataset from "./datasets/evaluate";
import exportDatasetToBucket from "./datasets/export-bucket";
import type { TaskModule } from "../define-task";

/** Every task this worker runs, one per job in the catalog. */
export const taskModules: TaskModule[] = [selftest, fetchModel, validateModel, deployEndpoint, encodeEpisode, deployDevice, importDataset, trainingRun, trainingCheckpoint, evaluateDataset, exportDatasetToBucket];

/** Tasks the crontab starts (not jobs: they keep no Job record). */
export const scheduledTasks = { "fleet:health-check": healthCheckTask, "captures:release-blobs": releaseCaptureBlobsTask, "storage:sweep-blobs": sweepBlobsTask, "captures:thin-joints": thinCaptureJointsTask, "datasets:store-files": storeDatasetFilesTask };
