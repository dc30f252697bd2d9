import type { z } from "zod";
import type { Db } from "../db";
import type { OrgActor } from "../auth/roles";
import { recordAudit } from "../audit/audit.service";
import { selftestJob } from "../jobs/catalog";
import { enqueue } from "../jobs/enqueue";

// Starting the self-test is all the portal does; running it (selftest-run.service.ts) is the
// worker's, and keeps ffmpeg, onnxruntime and ssh2 out of the portal's bundle.

export async function startSelftest(db: Db, { actor, input }: { actor: OrgActor; input: z.input<typeof selftestJob.payload> }): Promise<{ jobId: string }> {
  return db.$transaction(async (tx) => {
    const job = await enqueue(selftestJob, input, { tx, orgId: actor.orgId, createdById: actor.userId });
    await recordAudit(tx, { orgId: actor.orgId, actor, action: "job.start", target: job.jobId, data: { kind: selftestJob.name } });
    return job;
  });
}
