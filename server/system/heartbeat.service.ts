import os from "node:os";
import type { Db } from "../db";
import { Prisma } from "../generated/prisma/client";
import { appendJobEvent } from "../jobs/progress";

// Liveness is judged on the database's clock alone, so workers on machines whose clocks
// disagree never declare each other dead. What beats is a worker *pool*: graphile-worker
// locks jobs and queues under the pool's id, not under its individual workers' ids.
const DB_NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;

/** A job whose worker died under it this many times is ended, so it cannot take down another. */
export const MAX_CRASHES = 3;

/** Records that these worker pools are alive. */
export async function recordHeartbeat(db: Db, poolIds: string[]): Promise<void> {
  await db.$executeRaw`
    INSERT INTO "WorkerHeartbeat" ("id", "host", "pid", "startedAt", "lastSeen")
    SELECT unnest(${poolIds}::text[]), ${os.hostname()}, ${process.pid}, ${DB_NOW}, ${DB_NOW}
    ON CONFLICT ("id") DO UPDATE SET "lastSeen" = EXCLUDED."lastSeen"`;
}

export async function removeHeartbeats(db: Db, poolIds: string[]): Promise<void> {
  await db.workerHeartbeat.deleteMany({ where: { id: { in: poolIds } } });
}

export interface ReleasedWorker {
  id: string;
  host: string;
  pid: number;
  /** Jobs handed on to another worker. */
  resumed: string[];
  /** Jobs ended because their worker died under them MAX_CRASHES times. */
  ended: string[];
}

/**
 * Releases the jobs of worker pools that stopped beating (a crash, a kill -9): each job held
 * runs again from its last durable state, with the attempt the crash used given back, instead
 * of waiting hours for the queue's lock to expire. A job whose worker died under it
 * MAX_CRASHES times ends failed, saying so.
 */
export async function releaseDeadWorkers(db: Db, staleAfterMs: number): Promise<ReleasedWorker[]> {
  const dead = await db.$queryRaw<{ id: string; host: string; pid: number }[]>`SELECT "id", "host", "pid" FROM "WorkerHeartbeat" WHERE "lastSeen" < ${DB_NOW} - make_interval(secs => ${staleAfterMs / 1000})`;
  const released: ReleasedWorker[] = [];
  for (const worker of dead) {
    const done = await db.$transaction(async (tx) => {
      // Only one releaser handles a dead pool: the row lock, then the row's removal.
      const [still] = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "WorkerHeartbeat" WHERE "id" = ${worker.id} FOR UPDATE SKIP LOCKED`;
      if (!still) return null;
      const held = await tx.$queryRaw<{ queueId: bigint; jobId: string | null }[]>`
        SELECT j.id AS "queueId", j.payload->>'jobId' AS "jobId" FROM graphile_worker._private_jobs j WHERE j.locked_by = ${worker.id}`;
      const result: ReleasedWorker = { ...worker, resumed: [], ended: [] };
      for (const h of held) {
        const job = h.jobId ? await tx.job.findUnique({ where: { id: h.jobId }, select: { id: true, orgId: true, status: true, crashes: true } }) : null;
        const isOurs = job && (job.status === "running" || job.status === "queued");
        const crashes = (job?.crashes ?? 0) + 1;
        if (isOurs && crashes >= MAX_CRASHES) {
          const reason = `Its worker (${worker.host}, pid ${worker.pid}) stopped while running it, ${crashes} times; it was ended so it cannot stop another. Start it again once the cause is fixed`;
          await tx.job.update({ where: { id: job.id }, data: { crashes, error: reason, finishedAt: new Date() } });
          await appendJobEvent(tx, { jobId: job.id, orgId: job.orgId, message: `Failed: ${reason}`, status: "failed", level: "error" });
          // The entry would otherwise run again; it has nothing left to do.
          await tx.$executeRaw`DELETE FROM graphile_worker._private_jobs WHERE id = ${h.queueId}`;
          result.ended.push(job.id);
          continue;
        }
        // The crash is not a failure of the work: give the attempt back, and run it at once.
        await tx.$executeRaw`UPDATE graphile_worker._private_jobs SET attempts = GREATEST(attempts - 1, 0), run_at = now() WHERE id = ${h.queueId}`;
        if (isOurs) {
          await tx.job.update({ where: { id: job.id }, data: { crashes } });
          await appendJobEvent(tx, { jobId: job.id, orgId: job.orgId, message: `The worker running it (${worker.host}, pid ${worker.pid}) stopped; it goes on from where it stood`, status: "queued", level: "warn" });
          result.resumed.push(job.id);
        }
      }
      await tx.$executeRaw`SELECT graphile_worker.force_unlock_workers(${[worker.id]}::text[])`;
      await tx.workerHeartbeat.delete({ where: { id: worker.id } });
      return result;
    });
    if (done) released.push(done);
  }
  return released;
}
