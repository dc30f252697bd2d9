import { deployEndpointJob } from "../../../server/jobs/catalog";
import { deployEndpoint } from "../../../server/serving/deploy.service";
import { blobStore } from "../../../server/storage/blobs";
import { defineTask } from "../../define-task";

export default defineTask(deployEndpointJob, (payload, { db, progress, signal, job }) =>
  deployEndpoint(db, { orgId: job.orgId, endpointId: payload.endpointId, blobs: blobStore(), progress, signal }),
);
