import type { Task } from "graphile-worker";
import type { z } from "zod";
import type { Db } from "../server/db";
import { isDatabaseUnavailable } from "../server/db/availability";
import type { JobDef } from "../server/jobs/catalog";
import { taskPayloadSchema } from "../server/jobs/catalog";
import { JobInterruptedError, JobTakenOverError, type CancellationRegistry } from "../server/jobs/cancellation";
import { runJob, type JobHandler } from "../server/jobs/run";

export interface TaskDeps {
  db: Db;
  cancellations: CancellationRegistry;
  /**
   * Queue entry ids whose attempt the worker gives back: jobs its shutdown interrupted, and
   * runs the database went away under.
   */
  giveBack?: Set<string>;
  /** Queue entry id → Job id of the runs in progress, for the heartbeat to check they are still this worker's. */
  running?: Map<string, string>;
}

export interface TaskModule {
  def: JobDef;
  handler: JobHandler<z.ZodType>;
}

export function defineTask<S extends z.ZodType>(def: JobDef<S>, handler: JobHandler<S>): TaskModule {
  return { def, handler: handler as JobHandler<z.ZodType> };
}

/** Adapts a task module to graphile-worker: the queue entry only names the Job row. */
export function toGraphileTask(mod: TaskModule, deps: TaskDeps): Task {
  return async (rawPayload, helpers) => {
    const { jobId } = taskPayloadSchema.parse(rawPayload);
    const entryId = String(helpers.job.id);
    deps.running?.set(entryId, jobId);
    try {
      await runJob({ ...deps, def: mod.def, jobId, attempt: helpers.job.attempts, handler: mod.handler });
    } catch (error) {
      // A run taken over leaves the entry alone: it is another worker's now.
      if (!(error instanceof JobTakenOverError) && (error instanceof JobInterruptedError || isDatabaseUnavailable(error))) deps.giveBack?.add(entryId);
      throw error;
    } finally {
      if (deps.running?.get(entryId) === jobId) deps.running.delete(entryId);
    }
  };
}
