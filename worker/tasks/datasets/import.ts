import { runImport } from "../../../server/datasets/import.service";
import { env } from "../../../server/env";
import { importDatasetJob } from "../../../server/jobs/catalog";
import { defineTask } from "../../define-task";

export default defineTask(importDatasetJob, (payload, { db, progress, signal }) => runImport(db, { ...payload, settings: env(), progress, signal }));
