import os from "node:os";
import { z } from "zod";
import { env } from "../../env";
import { checkHealth } from "../../system/health.service";
import { healthSchema, startSelftestInput } from "../../system/system.schemas";
import { startSelftest } from "../../system/selftest.service";
import { countJobsByStatus, listJobs } from "../../jobs/jobs.service";
import { jobSchema } from "../../jobs/jobs.schemas";
import { listMembers } from "../../orgs/orgs.service";
import { orgProcedure, router } from "../trpc";

export const systemRouter = router({
  health: orgProcedure("viewer").output(healthSchema).query(({ ctx }) => checkHealth(ctx.db, { staleAfterMs: env().WORKER_STALE_AFTER_MS })),
  overview: orgProcedure("viewer")
    .output(z.object({
      jobCounts: z.record(z.string(), z.number()),
      members: z.number().int(),
      recentJobs: z.array(jobSchema),
      health: healthSchema,
    }))
    .query(async ({ ctx }) => {
      const orgId = ctx.orgActor.orgId;
      const [jobCounts, members, recent, health] = await Promise.all([
        countJobsByStatus(ctx.db, orgId),
        listMembers(ctx.db, orgId),
        listJobs(ctx.db, { orgId, input: { limit: 8 } }),
        checkHealth(ctx.db, { staleAfterMs: env().WORKER_STALE_AFTER_MS }),
      ]);
      return { jobCounts, members: members.length, recentJobs: recent.items, health };
    }),
  instance: orgProcedure("viewer")
    .output(z.object({ version: z.string(), node: z.string(), host: z.string(), publicUrl: z.string(), database: z.string(), blobDir: z.string(), firebase: z.boolean(), signup: z.boolean() }))
    .query(() => {
      const s = env();
      return {
        version: process.env.npm_package_version ?? "0.1.0",
        node: process.version,
        host: os.hostname(),
        publicUrl: s.PUBLIC_URL,
        // Never the credentials: only where the database is.
        database: s.DATABASE_URL ? new URL(s.DATABASE_URL).host + new URL(s.DATABASE_URL).pathname : "not configured",
        blobDir: s.BLOB_DIR,
        firebase: s.isFirebaseEnabled,
        signup: s.ALLOW_SIGNUP,
      };
    }),
  startSelftest: orgProcedure("operator").input(startSelftestInput).output(z.object({ jobId: z.uuid() })).mutation(({ ctx, input }) => startSelftest(ctx.db, { actor: ctx.orgActor, input })),
});
