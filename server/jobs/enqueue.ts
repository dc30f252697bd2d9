import type { z } from "zod";
import type { Tx } from "../db";
import { AppError } from "../errors";
import { Prisma } from "../generated/prisma/client";
import type { JobDef } from "./catalog";
import { UTC_NOW, writeJobEvent } from "./job-events.sql";

export interface EnqueueOptions {
  /** The transaction that makes the state change this job belongs to. */
  tx: Tx;
  orgId: string;
  createdById?: string | null;
  /** graphile-worker queue: jobs sharing a queue run one at a time (e.g. per device). */
  queue?: string;
  runAt?: Date;
}

/** Creates the Job record and the queue entry in the caller's transaction: both or neither. */
export async function enqueue<S extends z.ZodType>(def: JobDef<S>, payload: z.input<S>, opts: EnqueueOptions): Promise<{ jobId: string }> {
  const parsed = def.payload.safeParse(payload);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `Invalid ${def.title} settings: ${parsed.error.issues.map((i) => `${i.path.join(".") || "payload"} ${i.message}`).join("; ")}`);
  // One statement: the Job row, its queue entry and its first event (one round trip).
  const row = await writeJobEvent<{ jobId: string }>(
    opts.tx,
    Prisma.sql`
      SELECT inserted."id" AS "jobId", inserted."orgId", 1 AS "seq",
        (SELECT count(*) FROM (SELECT ${queueEntrySql(def, Prisma.sql`inserted."id"`, opts)} FROM inserted) AS q) AS "queued"
      FROM inserted`,
    { message: "Queued", status: "queued", progress: 0 },
    Prisma.sql`inserted AS (
      INSERT INTO "Job" ("id", "orgId", "kind", "status", "payload", "maxAttempts", "createdById", "createdAt", "lastSeq")
      VALUES (gen_random_uuid(), ${opts.orgId}::uuid, ${def.name}, 'queued', ${JSON.stringify(parsed.data)}::jsonb, ${def.maxAttempts}, ${opts.createdById ?? null}::uuid, ${UTC_NOW}, 1)
      RETURNING "id", "orgId"
    )`,
  );
  const job = { id: row!.jobId };
  return { jobId: job.id };
}

/**
 * The queue entry names only the Job row. Its job_key is the job's id, so a retry replaces
 * a leftover entry instead of adding a second one, and a cancel can remove it.
 */
function queueEntrySql(def: JobDef, jobId: Prisma.Sql, opts: { queue?: string; runAt?: Date }): Prisma.Sql {
  return Prisma.sql`graphile_worker.add_job(${def.name}::text, json_build_object('jobId', ${jobId}::text), queue_name => ${opts.queue ?? null}::text,
    run_at => ${opts.runAt ?? null}::timestamptz, max_attempts => ${def.maxAttempts}::int, job_key => ${jobId}::text)`;
}

export async function addQueueEntry(tx: Tx, def: JobDef, jobId: string, opts: { queue?: string; runAt?: Date }): Promise<void> {
  await tx.$executeRaw`SELECT ${queueEntrySql(def, Prisma.sql`${jobId}::uuid`, opts)}`;
}

/** Takes a job that has not started off the queue (a running one is stopped by its signal). */
export async function removeQueueEntry(tx: Tx, jobId: string): Promise<void> {
  await tx.$executeRaw`SELECT graphile_worker.remove_job(${jobId}::text)`;
}

/**
 * Lets go of what a worker pool that has just stopped still holds. The entries of jobs its
 * shutdown interrupted run again at once with the attempt the interruption used given back;
 * anything else still locked under the pool (a finish the queue had not yet written) is
 * unlocked, and runs again only to find its job finished. Done here rather than left to the
 * queue, which writes a job's end without waiting for it while it shuts down.
 */
export async function releaseStoppedPool(tx: Tx, poolIds: string[], interruptedEntryIds: string[]): Promise<void> {
  if (!poolIds.length) return;
  await tx.$executeRaw`
    UPDATE graphile_worker._private_jobs SET attempts = GREATEST(attempts - 1, 0), run_at = now(), last_error = NULL, locked_by = NULL, locked_at = NULL
    WHERE id = ANY(${interruptedEntryIds}::bigint[]) AND (locked_by IS NULL OR locked_by = ANY(${poolIds}::text[]))`;
  await tx.$executeRaw`SELECT graphile_worker.force_unlock_workers(${poolIds}::text[])`;
}

/**
 * Gives back the attempt of entries whose run ended because the database went away under it
 * (not the work's failure), once the queue has let go of them. Returns the ids settled: given
 * back, gone, or taken meanwhile by another worker.
 */
export async function giveBackAttempts(tx: Tx, entryIds: string[], poolIds: string[]): Promise<string[]> {
  if (!entryIds.length) return [];
  const rows = await tx.$queryRaw<{ id: string }[]>`
    WITH given AS (
      UPDATE graphile_worker._private_jobs SET attempts = GREATEST(attempts - 1, 0), run_at = now()
      WHERE id = ANY(${entryIds}::bigint[]) AND locked_by IS NULL RETURNING id
    )
    SELECT id::text AS id FROM given
    UNION ALL
    SELECT x::text FROM unnest(${entryIds}::bigint[]) AS x
    WHERE NOT EXISTS (SELECT 1 FROM graphile_worker._private_jobs j WHERE j.id = x AND (j.locked_by IS NULL OR j.locked_by = ANY(${poolIds}::text[])))`;
  return rows.map((r) => r.id);
}
