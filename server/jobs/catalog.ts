import { z } from "zod";

// Every job is declared once here: its name (also the worker's task identifier), its payload
// schema, a title for people, and how often it may be tried.

export interface JobDef<S extends z.ZodType = z.ZodType> {
  name: string;
  title: string;
  payload: S;
  maxAttempts: number;
}

function defineJob<S extends z.ZodType>(def: JobDef<S>): JobDef<S> {
  return def;
}

export const selftestJob = defineJob({
  name: "system.selftest",
  title: "Self-test",
  payload: z.object({
    steps: z.number().int().min(1).max(50).default(5),
    stepMs: z.number().int().min(0).max(60_000).default(1000),
    /** Fail at this step (1-based) to exercise retries and failure reporting. */
    failAtStep: z.number().int().min(1).optional(),
  }),
  maxAttempts: 1,
});

export const jobCatalog = [selftestJob] as const;

export type JobName = (typeof jobCatalog)[number]["name"];

export function findJobDef(name: string): JobDef | undefined {
  return jobCatalog.find((d) => d.name === name);
}

/** What graphile-worker carries: only a reference, the rest lives in the Job row. */
export const taskPayloadSchema = z.object({ jobId: z.uuid() });

/** pg_notify payloads: ids only, the database holds the data. */
export const EVENTS_CHANNEL = "gantry_job_events";
export const CANCEL_CHANNEL = "gantry_job_cancel";
export const eventNotificationSchema = z.object({ jobId: z.uuid(), orgId: z.uuid(), id: z.string().regex(/^\d+$/) });
export const cancelNotificationSchema = z.object({ jobId: z.uuid() });
