import type { z } from "zod";
import type { Tx } from "../db";
import { AppError } from "../errors";
import { EVENTS_CHANNEL, type JobDef } from "./catalog";
import { UTC_NOW } from "./progress";

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
  const [row] = await opts.tx.$queryRaw<{ id: string }[]>`
    WITH job AS (
      INSERT INTO "Job" ("id", "orgId", "kind", "status", "payload", "maxAttempts", "createdById", "createdAt", "lastSeq")
      VALUES (gen_random_uuid(), ${opts.orgId}::uuid, ${def.name}, 'queued', ${JSON.stringify(parsed.data)}::jsonb, ${def.maxAttempts}, ${opts.createdById ?? null}::uuid, ${UTC_NOW}, 1)
      RETURNING "id"
    ), queued AS (
      SELECT graphile_worker.add_job(${def.name}::text, json_build_object('jobId', job.id::text), queue_name => ${opts.queue ?? null}::text,
        run_at => ${opts.runAt ?? null}::timestamptz, max_attempts => ${def.maxAttempts}::int) FROM job
    ), event AS (
      INSERT INTO "JobEvent" ("jobId", "orgId", "seq", "at", "level", "progress", "status", "message")
      SELECT job.id, ${opts.orgId}::uuid, 1, ${UTC_NOW}, 'info', 0, 'queued', 'Queued' FROM job
      RETURNING "id"
    )
    SELECT job.id::text AS id, (SELECT count(*) FROM queued)::int AS queued,
      pg_notify(${EVENTS_CHANNEL}, json_build_object('jobId', job.id::text, 'orgId', ${opts.orgId}::text, 'id', event.id::text)::text)::text AS notified
    FROM job, event`;
  const job = { id: row.id };
  return { jobId: job.id };
}

export async function addQueueEntry(tx: Tx, def: JobDef, jobId: string, opts: { queue?: string; runAt?: Date }): Promise<void> {
  await tx.$executeRaw`SELECT graphile_worker.add_job(${def.name}::text, json_build_object('jobId', ${jobId}::text), queue_name => ${opts.queue ?? null}::text, run_at => ${opts.runAt ?? null}::timestamptz, max_attempts => ${def.maxAttempts}::int)`;
}
