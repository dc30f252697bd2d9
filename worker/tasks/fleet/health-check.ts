import type { Task } from "graphile-worker";
import { env } from "../../../server/env";
import { finishCancelledDeployments } from "../../../server/fleet/deploy.service";
import { checkDueDevices } from "../../../server/fleet/health.service";
import { settleStrandedTargets } from "../../../server/fleet/rollouts.service";
import { SshPool } from "../../../server/ssh/ssh-pool";
import { blobStore } from "../../../server/storage/blobs";
import type { TaskDeps } from "../../define-task";

// Scheduled once a minute (worker/crontab). Within the minute it checks as often as
// DEVICE_HEALTH_INTERVAL asks; a longer interval skips devices checked recently. The pool
// keeps each device's connection open from one check to the next, for as long as its worker
// runs: the worker's stop closes them (an open connection would keep the process alive).

export function healthCheckTask({ db, onStop }: Pick<TaskDeps, "db"> & { onStop: (close: () => void) => void }): Task {
  const pool = new SshPool({ idleMs: 10 * 60_000 });
  onStop(() => pool.close());
  return async () => {
    const interval = env().DEVICE_HEALTH_INTERVAL;
    const started = Date.now();
    await finishCancelledDeployments(db, { blobs: blobStore() });
    await settleStrandedTargets(db);
    for (let round = 0; ; round++) {
      await checkDueDevices(db, { pool, intervalSec: interval });
      const nextAt = started + (round + 1) * interval * 1000;
      if (nextAt - started >= 60_000) return;
      await new Promise((r) => setTimeout(r, Math.max(0, nextAt - Date.now())));
    }
  };
}
