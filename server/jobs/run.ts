import type { z } from "zod";
import type { Db } from "../db";
import { isAppError } from "../errors";
import type { JobDef } from "./catalog";
import { Prisma } from "../generated/prisma/client";
import { appendJobEvent, createProgressReporter, type ProgressReporter } from "./progress";
import { UTC_NOW, writeJobEvent } from "./job-events.sql";
import { isInterrupted, isTakenOver, type CancellationRegistry } from "./cancellation";
import { isDatabaseUnavailable } from "../db/availability";

export interface JobContext {
  db: Db;
  progress: ProgressReporter;
  /**
   * Aborts on a cancel, and also when the worker stops (its reason then a JobInterruptedError):
   * a service that undoes its work on a cancel checks isInterrupted(signal) first, and on an
   * interruption leaves things as a crash would, for the next run to go on from.
   */
  signal: AbortSignal;
  job: { id: string; orgId: string; createdById: string | null; attempt: number };
}

export type JobHandler<S extends z.ZodType> = (payload: z.output<S>, ctx: JobContext) => Promise<unknown>;

export interface RunJobOptions<S extends z.ZodType> {
  db: Db;
  def: JobDef<S>;
  jobId: string;
  /** The queue's attempt number, 1-based. */
  attempt: number;
  cancellations: CancellationRegistry;
  handler: JobHandler<S>;
}

/**
 * Runs one attempt of a job: marks it running, hands the service a progress reporter and an
 * AbortSignal, and records how it ended. Throws only when the queue should try again (or,
 * with a JobInterruptedError, run it again once a worker is back).
 */
export async function runJob<S extends z.ZodType>({ db, def, jobId, attempt, cancellations, handler }: RunJobOptions<S>): Promise<void> {
  // Claims the job and records "Started" in one statement: only a job still waiting (or
  // interrupted while running) with no cancel request starts. Cancelling locks the same row,
  // so a cancel and a claim never cross; a redelivered entry for a finished job does nothing.
  const job = await writeJobEvent<{ orgId: string; payload: unknown; maxAttempts: number; createdById: string | null }>(
    db,
    Prisma.sql`
      UPDATE "Job" SET "attempts" = ${attempt}, "startedAt" = COALESCE("startedAt", ${UTC_NOW}), "error" = NULL,
        "status" = 'running', "lastSeq" = "lastSeq" + 1
      WHERE "id" = ${jobId}::uuid AND "status" IN ('queued', 'running') AND "cancelRequestedAt" IS NULL
      RETURNING "id" AS "jobId", "orgId", "lastSeq" AS "seq", "payload", "maxAttempts", "createdById"`,
    { status: "running", message: attempt > 1 ? Prisma.sql`${`Started, attempt ${attempt} of `} || job."maxAttempts"::text` : "Started", durable: false },
  );
  // Not waiting for the disk (job-events.sql.ts): the queue's commit after this attempt flushes it.
  const record = (e: Parameters<typeof appendJobEvent>[1]) => appendJobEvent(db, { ...e, durable: false });
  // A job's end (its time, result or error) is written by the same statement as the event that
  // ends it, which flips the status: a reader never sees one without the other.
  if (!job) {
    const waiting = await db.job.findFirst({ where: { id: jobId, status: { in: ["queued", "running"] }, cancelRequestedAt: { not: null } } });
    if (waiting) {
      await record({ jobId, orgId: waiting.orgId, message: "Cancelled before it started", status: "cancelled", ends: {} });
    }
    return;
  }
  const base = { jobId, orgId: job.orgId };

  const controller = cancellations.register(jobId);
  try {
    const payload = def.payload.parse(job.payload);
    const progress = createProgressReporter(db, { id: jobId, orgId: job.orgId }, () => controller.abort());
    const result = await handler(payload, {
      db,
      progress,
      signal: controller.signal,
      job: { id: jobId, orgId: job.orgId, createdById: job.createdById, attempt },
    });
    // Another worker runs it now: its record is that run's to write.
    if (isTakenOver(controller.signal)) throw controller.signal.reason;
    // Work that finished as its worker began to stop has finished: only a cancel undoes it.
    if (controller.signal.aborted && !isInterrupted(controller.signal)) throw controller.signal.reason ?? new Error("Cancelled");
    await record({ ...base, message: "Finished", status: "succeeded", progress: 1, ends: { result: (result ?? undefined) as object | undefined } });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (isTakenOver(controller.signal)) throw controller.signal.reason;
    if (isDatabaseUnavailable(error)) {
      // The database went away under it: not the work's failure. Said if the database is back
      // already; the worker gives the attempt back once it is, and the job goes on.
      await record({ ...base, message: "Interrupted: the database could not be reached; it goes on once the database is back", status: "queued", level: "warn" }).catch(() => {});
      throw error;
    }
    if (isInterrupted(controller.signal)) {
      // Its worker is shutting down: back to the queue, the attempt given back (by the worker,
      // once the queue has let go of the entry), to go on where it stood.
      await record({ ...base, message: "Interrupted: its worker was stopped; it goes on from where it stood when a worker runs it again", status: "queued", level: "warn" });
      throw controller.signal.reason;
    }
    if (controller.signal.aborted) {
      await record({ ...base, message: "Cancelled", status: "cancelled", level: "warn", ends: {} });
      return;
    }
    // A bad request (bad input, missing thing) will fail the same way every time: stop now.
    const isPermanent = isAppError(error) && error.code !== "INTERNAL" && error.code !== "RATE_LIMITED";
    if (isPermanent || attempt >= job.maxAttempts) {
      await record({ ...base, message: `Failed: ${message}`, status: "failed", level: "error", ends: { error: message } });
      return;
    }
    await record({ ...base, message: `Attempt ${attempt} failed: ${message}. Retrying with backoff.`, status: "queued", level: "warn", attemptError: message });
    throw error;
  } finally {
    cancellations.unregister(jobId, controller);
  }
}
