import { z } from "zod";

export const jobStatusSchema = z.enum(["queued", "running", "succeeded", "failed", "cancelled"]);
export const eventLevelSchema = z.enum(["debug", "info", "warn", "error"]);

export const jobSchema = z.object({
  id: z.uuid(),
  kind: z.string(),
  title: z.string(),
  /** What it is about: a model version, an episode, a device… (null when it names nothing). */
  subject: z.string().nullable(),
  status: jobStatusSchema,
  progress: z.number(),
  step: z.string().nullable(),
  attempts: z.number().int(),
  maxAttempts: z.number().int(),
  error: z.string().nullable(),
  createdBy: z.string().nullable(),
  createdAt: z.date(),
  startedAt: z.date().nullable(),
  finishedAt: z.date().nullable(),
  cancelRequested: z.boolean(),
});
export type JobDto = z.infer<typeof jobSchema>;

export const jobEventSchema = z.object({
  id: z.string(),
  jobId: z.uuid(),
  seq: z.number().int(),
  /** The event's number within its organisation (the org-wide stream's event id). */
  orgSeq: z.number().int(),
  at: z.date(),
  level: eventLevelSchema,
  step: z.string().nullable(),
  progress: z.number().nullable(),
  status: jobStatusSchema.nullable(),
  message: z.string(),
});
export type JobEventDto = z.infer<typeof jobEventSchema>;

export const listJobsInput = z.object({
  status: jobStatusSchema.optional(),
  kind: z.string().max(100).optional(),
  limit: z.number().int().min(1).max(200).default(50),
  cursor: z.uuid().optional(),
});

export const jobIdInput = z.object({ jobId: z.uuid() });
