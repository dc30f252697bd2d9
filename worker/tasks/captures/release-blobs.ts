import type { Task } from "graphile-worker";
import { sweepReleasedBlobs } from "../../../server/captures/blob-refs";
import { blobStore } from "../../../server/storage/blobs";
import type { TaskDeps } from "../../define-task";

// Scheduled once a minute (worker/crontab): removes the frames, chunk manifests and snapshots
// that capture resets and deletes let go of, once no session names them. A long backlog is
// worked through a thousand at a time, minute by minute.

export function releaseCaptureBlobsTask({ db }: Pick<TaskDeps, "db">): Task {
  return async () => {
    await sweepReleasedBlobs(db, { blobs: blobStore() });
  };
}
