import { env } from "../../../server/env";
import { selftestJob } from "../../../server/jobs/catalog";
import { runSelftest } from "../../../server/system/selftest-run.service";
import { defineTask } from "../../define-task";

export default defineTask(selftestJob, (payload, { db, progress, signal }) => runSelftest(payload, { db, settings: env(), progress, signal }));
