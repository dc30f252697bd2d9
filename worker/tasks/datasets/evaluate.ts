import { env } from "../../../server/env";
import { runEvaluation } from "../../../server/evaluation/evaluation.service";
import { evaluateDatasetJob } from "../../../server/jobs/catalog";
import { blobStore } from "../../../server/storage/blobs";
import { defineTask } from "../../define-task";

export default defineTask(evaluateDatasetJob, (payload, { db, progress, signal }) => runEvaluation(db, { evaluationId: payload.evaluationId, settings: env(), blobs: blobStore(), progress, signal }));
