import type { Task } from "graphile-worker";
import { thinJointStates } from "../../../server/captures/joints.service";
import type { TaskDeps } from "../../define-task";

// Scheduled once a minute (worker/crontab): joint states older than a minute are thinned to ten
// a second, so a session recording an arm all day does not keep every reading.

export function thinCaptureJointsTask({ db }: Pick<TaskDeps, "db">): Task {
  return async () => {
    await thinJointStates(db);
  };
}
