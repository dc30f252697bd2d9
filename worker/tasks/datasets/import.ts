import { runImport } from "../../../server/datasets/import.service";
import { env } from "../../../server/env";
import { blobStore } from "../../../server/storage/blobs";
import { importDatasetJob } from "../../../server/jobs/catalog";
import { defineTask } from "../../define-task";

export default defineTask(importDatasetJob, (payload, { db, progress, signal }) => runImport(db, { ...payload, settings: env(), blobs: blobStore(), progress, signal }));
