import { selftestJob } from "../../../server/jobs/catalog";
import { runSelftest } from "../../../server/system/selftest.service";
import { defineTask } from "../../define-task";

export default defineTask(selftestJob, (payload, { progress, signal }) => runSelftest(payload, { progress, signal }));
