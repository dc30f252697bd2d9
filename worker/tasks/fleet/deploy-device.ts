import { deployToDevice } from "../../../server/fleet/deploy.service";
import { deployDeviceJob } from "../../../server/jobs/catalog";
import { blobStore } from "../../../server/storage/blobs";
import { defineTask } from "../../define-task";

export default defineTask(deployDeviceJob, (payload, { db, progress, signal, job }) =>
  deployToDevice(db, { orgId: job.orgId, targetId: payload.targetId, blobs: blobStore(), progress, signal }),
);
