import type { Tx, Db } from "../db";
import { Prisma } from "../generated/prisma/client";
import { clampProgress, UTC_NOW, writeJobEvent, type EventFields, type EventLevel } from "./job-events.sql";

export { UTC_NOW } from "./job-events.sql";

export interface JobEventInput extends EventFields {
  jobId: string;
  orgId: string;
  message: string;
  /** Written even though the job has ended: only for the event that starts it again (a retry). */
  reopens?: boolean;
  /** The event that ends the job: its end time, and its result or error, go in with it. */
  ends?: { result?: object; error?: string };
  /** The error of an attempt that will be retried: kept on the job, which has not ended (not with `ends`, which says its own). */
  attemptError?: string;
}

/**
 * Appends one event to a job's durable log and updates the job's summary (progress, step and,
 * when the event carries one, status — so a status is never seen before its event), in one
 * statement: atomic without a transaction, one round trip. Inside a caller's transaction the
 * NOTIFY is delivered at its commit.
 *
 * Once a job has ended (succeeded, failed, cancelled) its final event stays its last: a late
 * report from its work (a progress write that was still on its way) is dropped, so the job
 * never shows "succeeded · 45 %". `written` says whether the event was recorded.
 */
export async function appendJobEvent(tx: Tx, e: JobEventInput): Promise<{ id: bigint | null; seq: number; isCancelRequested: boolean; written: boolean }> {
  const row = await writeJobEvent<{ seq: number; isCancelRequested: boolean }>(
    tx,
    Prisma.sql`
      UPDATE "Job" SET "lastSeq" = "lastSeq" + 1,
        "progress" = COALESCE(${clampProgress(e.progress)}::float8, "progress"),
        "step" = COALESCE(${e.step ?? null}::text, "step"),
        "status" = COALESCE(${e.status ?? null}::"JobStatus", "status")
        ${e.ends ? endsSql(e.ends) : Prisma.empty}
        ${e.attemptError === undefined || e.ends ? Prisma.empty : Prisma.sql`, "error" = ${e.attemptError}::text`}
      WHERE "id" = ${e.jobId}::uuid AND "orgId" = ${e.orgId}::uuid
        AND (${e.reopens === true} OR "status" NOT IN ('succeeded', 'failed', 'cancelled'))
      RETURNING "id" AS "jobId", "orgId", "lastSeq" AS "seq", ("cancelRequestedAt" IS NOT NULL) AS "isCancelRequested"`,
    e,
  );
  if (row) return { id: row.eventId, seq: row.seq, isCancelRequested: row.isCancelRequested, written: true };
  const ended = await tx.job.findFirst({ where: { id: e.jobId, orgId: e.orgId }, select: { lastSeq: true, cancelRequestedAt: true } });
  if (!ended) throw new Error(`Job ${e.jobId} does not exist`);
  return { id: null, seq: ended.lastSeq, isCancelRequested: ended.cancelRequestedAt !== null, written: false };
}

function endsSql(ends: { result?: object; error?: string }): Prisma.Sql {
  return Prisma.sql`, "finishedAt" = ${UTC_NOW}
    ${ends.result === undefined ? Prisma.empty : Prisma.sql`, "result" = ${JSON.stringify(ends.result)}::jsonb`}
    ${ends.error === undefined ? Prisma.empty : Prisma.sql`, "error" = ${ends.error}::text`}`;
}

/** What a service is handed to report progress: it never sees the job machinery. */
export interface ProgressReporter {
  /** Starts a named step; `fraction` is the whole job's progress, 0..1. */
  step(name: string, fraction?: number): Promise<void>;
  /** Moves the progress bar within the current step. */
  set(fraction: number, message?: string): Promise<void>;
  log(message: string, level?: EventLevel): Promise<void>;
}

/**
 * `onCancelRequested` is a fallback for a missed cancel notification: every write sees the
 * job's cancel flag, so a running job stops at its next progress report at the latest.
 */
export function createProgressReporter(db: Db, job: { id: string; orgId: string }, onCancelRequested?: () => void): ProgressReporter {
  let currentStep: string | null = null;
  const write = async (e: Omit<JobEventInput, "jobId" | "orgId">) => {
    const written = await appendJobEvent(db, { ...e, jobId: job.id, orgId: job.orgId, durable: false });
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
