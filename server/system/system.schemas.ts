import { z } from "zod";
import { jobSchema } from "../jobs/jobs.schemas";

export const healthSchema = z.object({
  status: z.enum(["ok", "degraded"]),
  database: z.object({ ok: z.boolean(), latencyMs: z.number().nullable(), error: z.string().optional() }),
  worker: z.object({ ok: z.boolean(), lastSeen: z.date().nullable(), workers: z.number().int() }),
  queue: z.object({ depth: z.number().int().nullable(), running: z.number().int().nullable() }),
  /** Jobs that are stuck: nulls when the database could not be asked. */
  jobs: z.object({
    ok: z.boolean(),
    /** Queue entries free to run that have waited past the limit for a worker to take them. */
    overdue: z.number().int().nullable(),
    /** Running jobs that have reported nothing past the limit. */
    silent: z.number().int().nullable(),
    /** Queued or running jobs no worker will ever take: their queue entry is gone or used up. */
    stranded: z.number().int().nullable(),
    /** What is wrong and what to do, one sentence each. */
    problems: z.array(z.string()),
  }),
  checkedAt: z.date(),
});
export type Health = z.infer<typeof healthSchema>;

/** Empty: check what Gantry needs. With `steps`: that many timed steps, to exercise the job machinery. */
export const startSelftestInput = z.object({
  steps: z.number().int().min(1).max(50).optional(),
  stepMs: z.number().int().min(0).max(60_000).default(1000),
  failAtStep: z.number().int().min(1).max(50).optional(),
});

export const overviewSchema = z.object({
  jobCounts: z.record(z.string(), z.number()),
  members: z.number().int(),
  recentJobs: z.array(jobSchema),
  health: healthSchema,
});

/** How many of each first thing the organisation has: the Overview's getting-started checklist. */
export const gettingStartedSchema = z.object({
  tokens: z.number().int(),
  /** Tokens that have been used, plus episodes that came from an agent. */
  agentsConnected: z.number().int(),
  datasets: z.number().int(),
  models: z.number().int(),
  endpoints: z.number().int(),
  devices: z.number().int(),
});

export const instanceSchema = z.object({
  version: z.string(),
  node: z.string(),
  host: z.string(),
  publicUrl: z.string(),
  database: z.string(),
  blobDir: z.string(),
  firebase: z.boolean(),
  signup: z.boolean(),
});
