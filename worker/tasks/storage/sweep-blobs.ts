import type { Task } from "graphile-worker";
import { env } from "../../../server/env";
import { describeSweep, sweepBlobs } from "../../../server/storage/blob-sweep.service";
import { blobStore } from "../../../server/storage/blobs";
import type { TaskDeps } from "../../define-task";

// Scheduled hourly (worker/crontab): removes blobs no row names and what crashed writers left,
// past the grace windows of BLOB_SWEEP_GRACE_S and BLOB_LEFTOVER_AGE_S.

export function sweepBlobsTask({ db }: Pick<TaskDeps, "db">): Task {
  return async (_payload, helpers) => {
    const e = env();
    const report = await sweepBlobs(db, { blobs: blobStore(), graceMs: e.BLOB_SWEEP_GRACE_S * 1000, leftoverAgeMs: e.BLOB_LEFTOVER_AGE_S * 1000 });
    if (report.blobs.count || report.leftovers.count) helpers.logger.info(describeSweep(report));
  };
}
