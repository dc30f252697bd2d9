import type { z } from "zod";
import type { Tx } from "../db";
import { AppError } from "../errors";
import { EVENTS_CHANNEL, type JobDef } from "./catalog";
import { appendJobEvent } from "./progress";

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
  const job = await opts.tx.job.create({
    data: {
      orgId: opts.orgId,
      kind: def.name,
      payload: parsed.data as object,
      maxAttempts: def.maxAttempts,
      createdById: opts.createdById ?? null,
    },
  });
  await addQueueEntry(opts.tx, def, job.id, opts);
  await appendJobEvent(opts.tx, { jobId: job.id, orgId: opts.orgId, message: "Queued", status: "queued", progress: 0 });
  return { jobId: job.id };
}

export async function addQueueEntry(tx: Tx, def: JobDef, jobId: string, opts: { queue?: string; runAt?: Date }): Promise<void> {
  await tx.$executeRaw`SELECT graphile_worker.add_job(${def.name}::text, json_build_object('jobId', ${jobId}::text), queue_name => ${opts.queue ?? null}::text, run_at => ${opts.runAt ?? null}::timestamptz, max_attempts => ${def.maxAttempts}::int)`;
}

export { EVENTS_CHANNEL };
