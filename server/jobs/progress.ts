import type { Tx, Db } from "../db";
import { EVENTS_CHANNEL } from "./catalog";

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
 * Appends one event to a job's durable log and updates the job's summary, then notifies
 * listeners with ids only. Run inside a transaction so the row and the hint commit together
 * (NOTIFY is delivered at commit).
 */
export async function appendJobEvent(tx: Tx, e: JobEventInput): Promise<{ id: bigint; seq: number; isCancelRequested: boolean }> {
  const progress = e.progress == null ? null : Math.min(1, Math.max(0, e.progress));
  const [job] = await tx.$queryRaw<{ lastSeq: number; cancelRequestedAt: Date | null }[]>`
    UPDATE "Job" SET "lastSeq" = "lastSeq" + 1,
      "progress" = COALESCE(${progress}::float8, "progress"),
      "step" = COALESCE(${e.step ?? null}::text, "step")
    WHERE id = ${e.jobId}::uuid RETURNING "lastSeq", "cancelRequestedAt"`;
  if (!job) throw new Error(`Job ${e.jobId} does not exist`);
  const event = await tx.jobEvent.create({
    data: {
      jobId: e.jobId,
      orgId: e.orgId,
      seq: job.lastSeq,
      level: e.level ?? "info",
      step: e.step ?? null,
      progress,
      status: e.status ?? null,
      message: e.message.slice(0, 4000),
    },
    select: { id: true, seq: true },
  });
  const note = JSON.stringify({ jobId: e.jobId, orgId: e.orgId, id: event.id.toString() });
  await tx.$executeRaw`SELECT pg_notify(${EVENTS_CHANNEL}, ${note})`;
  return { ...event, isCancelRequested: job.cancelRequestedAt !== null };
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
    const written = await db.$transaction((tx) => appendJobEvent(tx, { ...e, jobId: job.id, orgId: job.orgId }));
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
