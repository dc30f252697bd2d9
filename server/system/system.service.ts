import os from "node:os";
import type { z } from "zod";
import type { Db } from "../db";
import type { Env } from "../env";
import { checkInstanceAdmin } from "../auth/instance-admins.service";
import { countJobsByStatus, listJobs } from "../jobs/jobs.service";
import { checkHealth } from "./health.service";
import type { instanceSchema, overviewSchema } from "./system.schemas";

/** The overview page: job counts, members, recent jobs and health, read together. */
export async function getOverview(db: Db, { orgId, staleAfterMs }: { orgId: string; staleAfterMs: number }): Promise<z.infer<typeof overviewSchema>> {
  const [jobCounts, members, recent, health] = await Promise.all([
    countJobsByStatus(db, orgId),
    db.membership.count({ where: { orgId } }),
    listJobs(db, { orgId, input: { limit: 8 } }),
    checkHealth(db, { staleAfterMs }),
  ]);
  return { jobCounts, members, recentJobs: recent.items, health };
}

/** Where this instance runs and keeps things, for instance admins; never a credential. */
export async function describeInstance(db: Db, { userId, settings }: { userId: string; settings: Env }): Promise<z.infer<typeof instanceSchema>> {
  await checkInstanceAdmin(db, { userId, instanceAdmins: settings.INSTANCE_ADMINS });
  const database = settings.DATABASE_URL ? new URL(settings.DATABASE_URL) : null;
  return {
    version: process.env.npm_package_version ?? "0.1.0",
    node: process.version,
    host: os.hostname(),
    publicUrl: settings.PUBLIC_URL,
    database: database ? `${database.host}${database.pathname}` : "not configured",
    blobDir: settings.BLOB_DIR,
    firebase: settings.isFirebaseEnabled,
    signup: settings.ALLOW_SIGNUP,
  };
}
