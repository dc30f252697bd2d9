import type { Tx, Db } from "../db";
import { Prisma } from "../generated/prisma/client";
import { EVENTS_CHANNEL } from "./catalog";

/** Prisma keeps DateTime columns as UTC wall-clock time; raw SQL must write them the same way. */
export const UTC_NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;

type Level = "debug" | "info" | "warn" | "error";
type Status = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface JobEventInput {
  jobId: string;
  orgId: string;
  message: string;
  level?: Level;
  step?: string | null;
  progress?: number | null;
  status?: Status | null;
}

/**
 * Appends one event to a job's durable log, updates the job's summary (progress, step and,
 * when the event carries one, status — so a status is never seen before its event) and notifies listeners
 * with ids only — in one statement, so it is atomic without a transaction and costs one round
 * trip. Inside a caller's transaction the NOTIFY is delivered at its commit.
 */
export async function appendJobEvent(tx: Tx, e: JobEventInput): Promise<{ id: bigint; seq: number; isCancelRequested: boolean }> {
  const progress = e.progress == null ? null : Math.min(1, Math.max(0, e.progress));
  const [row] = await tx.$queryRaw<{ id: bigint; seq: number; cancelRequestedAt: Date | null }[]>`
    WITH job AS (
      UPDATE "Job" SET "lastSeq" = "lastSeq" + 1,
        "progress" = COALESCE(${progress}::float8, "progress"),
        "step" = COALESCE(${e.step ?? null}::text, "step"),
        "status" = COALESCE(${e.status ?? null}::"JobStatus", "status")
      WHERE id = ${e.jobId}::uuid
      RETURNING "lastSeq", "cancelRequestedAt"
    ), event AS (
      INSERT INTO "JobEvent" ("jobId", "orgId", "seq", "at", "level", "step", "progress", "status", "message")
      SELECT ${e.jobId}::uuid, ${e.orgId}::uuid, job."lastSeq", ${UTC_NOW}, ${e.level ?? "info"}::"EventLevel", ${e.step ?? null}::text,
        ${progress}::float8, ${e.status ?? null}::"JobStatus", ${e.message.slice(0, 4000)}::text
      FROM job
      RETURNING id, seq
    )
    SELECT event.id, event.seq, job."cancelRequestedAt",
      pg_notify(${EVENTS_CHANNEL}, json_build_object('jobId', ${e.jobId}::text, 'orgId', ${e.orgId}::text, 'id', event.id::text)::text)::text AS notified
    FROM event, job`;
  if (!row) throw new Error(`Job ${e.jobId} does not exist`);
  return { id: row.id, seq: row.seq, isCancelRequested: row.cancelRequestedAt !== null };
}

/** What a service is handed to report progress: it never sees the job machinery. */
export interface ProgressReporter {
  /** Starts a named step; `fraction` is the whole job's progress, 0..1. */
  step(name: string, fraction?: number): Promise<void>;
  /** Moves the progress bar within the current step. */
  set(fraction: number, message?: string): Promise<void>;
  log(message: string, level?: Level): Promise<void>;
}

/**
 * `onCancelRequested` is a fallback for a missed cancel notification: every write sees the
 * job's cancel flag, so a running job stops at its next progress report at the latest.
 */
export function createProgressReporter(db: Db, job: { id: string; orgId: string }, onCancelRequested?: () => void): ProgressReporter {
  let currentStep: string | null = null;
  const write = async (e: Omit<JobEventInput, "jobId" | "orgId">) => {
    const written = await appendJobEvent(db, { ...e, jobId: job.id, orgId: job.orgId });
    if (written.isCancelRequested) onCancelRequested?.();
  };
  return {
    step: (name, fraction) => {
      currentStep = name;
      return write({ message: name, step: name, progress: fraction ?? null });
    },
    set: (fraction, message) => write({ message: message ?? `${Math.round(fraction * 100)}%`, step: currentStep, progress: fraction, level: message ? "info" : "debug" }),
    log: (message, level = "info") => write({ message, level, step: currentStep }),
  };
}

/** A reporter that writes nothing, for calling services outside a job. */
export const silentProgress: ProgressReporter = { step: async () => {}, set: async () => {}, log: async () => {} };
