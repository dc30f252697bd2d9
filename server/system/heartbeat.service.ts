import os from "node:os";
import type { Db, Tx } from "../db";
import { Prisma } from "../generated/prisma/client";
import { appendJobEvent } from "../jobs/progress";
import { endEvaluationOfJob } from "../evaluation/evaluation.service";
import { endRunOfJob } from "../training/runs.service";

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

/**
 * Of the queue entries this worker is running, those no longer locked by its pools: it was
 * taken for dead (not heard from within the window) and they were handed on.
 */
export async function findEntriesTakenOver(db: Db, entryIds: string[], poolIds: string[]): Promise<string[]> {
  if (!entryIds.length) return [];
  const held = await db.$queryRaw<{ id: string }[]>`
    SELECT id::text AS "id" FROM graphile_worker._private_jobs WHERE id = ANY(${entryIds}::bigint[]) AND locked_by = ANY(${poolIds}::text[])`;
  const stillHeld = new Set(held.map((h) => h.id));
  return entryIds.filter((id) => !stillHeld.has(id));
}

export async function removeHeartbeats(db: Db, poolIds: string[]): Promise<void> {
  await db.workerHeartbeat.deleteMany({ where: { id: { in: poolIds } } });
}

/** The queue's poll interval (worker/worker.ts): a job handed on waits at most this for a free worker to see it. */
export const QUEUE_POLL_MS = 1_000;

/**
 * How long after a worker dies its jobs are running again elsewhere, at the latest: its last
 * beat is up to one heartbeat old, it is found dead once that beat is `staleAfterMs` old by the
 * next sweep (every live worker sweeps on each of its own beats), and the entry handed on is
 * seen by the next poll of a worker with a free slot. 30 + 5 + 1 = 36 s with the defaults.
 */
export function handoffWindowMs({ heartbeatMs, staleAfterMs }: { heartbeatMs: number; staleAfterMs: number }): number {
  return staleAfterMs + heartbeatMs + QUEUE_POLL_MS;
}

export interface ReleasedWorker {
  id: string;
  /** Unknown for a pool that took jobs and died before its first beat. */
  host: string | null;
  pid: number | null;
  /** Jobs handed on to another worker. */
  resumed: string[];
  /** Jobs ended because their worker died under them MAX_CRASHES times. */
  ended: string[];
}

type Pool = { id: string; host: string | null; pid: number | null };

/**
 * Releases the jobs of worker pools that stopped beating (a crash, a kill -9): each job held
 * runs again from its last durable state, with the attempt the crash used given back, instead
 * of waiting hours for the queue's lock to expire. A job whose worker died under it
 * MAX_CRASHES times ends failed, saying so. Also released: jobs locked for longer than the
 * window under a pool that has no heartbeat at all (one that died before its first beat).
 */
export async function releaseDeadWorkers(db: Db, staleAfterMs: number): Promise<ReleasedWorker[]> {
  const stale = Prisma.sql`make_interval(secs => ${staleAfterMs / 1000})`;
  const dead = await db.$queryRaw<Pool[]>`SELECT "id", "host", "pid" FROM "WorkerHeartbeat" WHERE "lastSeen" < ${DB_NOW} - ${stale}`;
  const unknown = await db.$queryRaw<{ id: string }[]>`
    SELECT DISTINCT j.locked_by AS "id" FROM graphile_worker._private_jobs j
    WHERE j.locked_by IS NOT NULL AND j.locked_at < now() - ${stale}
      AND NOT EXISTS (SELECT 1 FROM "WorkerHeartbeat" h WHERE h."id" = j.locked_by)`;
  const released: ReleasedWorker[] = [];
  for (const pool of [...dead, ...unknown.map((u) => ({ id: u.id, host: null, pid: null }))]) {
    const done = await db.$transaction((tx) => releasePool(tx, pool, stale, pool.host !== null));
    if (done) released.push(done);
  }
  return released;
}

async function releasePool(tx: Tx, pool: Pool, stale: Prisma.Sql, hasHeartbeat: boolean): Promise<ReleasedWorker | null> {
  if (hasHeartbeat) {
    // Only one releaser handles a dead pool: the row lock, then the row's removal.
    const [still] = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "WorkerHeartbeat" WHERE "id" = ${pool.id} AND "lastSeen" < ${DB_NOW} - ${stale} FOR UPDATE SKIP LOCKED`;
    if (!still) return null;
  }
  // The entries' row locks order releasers of the same pool: the second finds them let go.
  const held = await tx.$queryRaw<{ queueId: bigint; attempts: number; jobId: string | null }[]>`
    SELECT j.id AS "queueId", j.attempts, j.payload->>'jobId' AS "jobId" FROM graphile_worker._private_jobs j
    WHERE j.locked_by = ${pool.id} ${hasHeartbeat ? Prisma.empty : Prisma.sql`AND j.locked_at < now() - ${stale}`} FOR UPDATE`;
  if (!hasHeartbeat && !held.length) return null;
  const result: ReleasedWorker = { ...pool, resumed: [], ended: [] };
  const where = pool.host ? `${pool.host}, pid ${pool.pid}` : `worker ${pool.id}`;
  const ended: bigint[] = [];
  const givenBack: { queueId: bigint; attempts: number }[] = [];
  for (const h of held) {
    const job = h.jobId ? await tx.job.findUnique({ where: { id: h.jobId }, select: { id: true, orgId: true, status: true, crashes: true } }) : null;
    const isOurs = job && (job.status === "running" || job.status === "queued");
    const crashes = (job?.crashes ?? 0) + 1;
    if (isOurs && crashes >= MAX_CRASHES) {
      const reason = await crashReason(tx, job.id, crashes, where);
      await tx.job.update({ where: { id: job.id }, data: { crashes, error: reason, finishedAt: new Date() } });
      await appendJobEvent(tx, { jobId: job.id, orgId: job.orgId, message: `Failed: ${reason}`, status: "failed", level: "error" });
      // Rows that keep a status of their own beside their job's end with it.
      await endRunOfJob(tx, job.id, reason);
      await endEvaluationOfJob(tx, job.id, reason);
      ended.push(h.queueId);
      result.ended.push(job.id);
      continue;
    }
    // The crash is not a failure of the work: give the attempt back, and run it at once.
    givenBack.push({ queueId: h.queueId, attempts: Math.max(h.attempts - 1, 0) });
    if (isOurs) {
      await tx.job.update({ where: { id: job.id }, data: { crashes } });
      await appendJobEvent(tx, { jobId: job.id, orgId: job.orgId, message: `The worker running it (${where}) stopped answering; it goes on from where it stood`, status: "queued", level: "warn" });
      result.resumed.push(job.id);
    }
  }
  // The queue's own functions from here: unlock, then drop the ended entries (their Job rows
  // say why) and run the others again now with the attempt given back.
  await tx.$executeRaw`SELECT graphile_worker.force_unlock_workers(${[pool.id]}::text[])`;
  if (ended.length) await tx.$executeRaw`SELECT FROM graphile_worker.complete_jobs(${ended}::bigint[])`;
  for (const g of givenBack) await tx.$executeRaw`SELECT FROM graphile_worker.reschedule_jobs(${[g.queueId]}::bigint[], run_at => now(), attempts => ${g.attempts}::int)`;
  if (hasHeartbeat) await tx.workerHeartbeat.delete({ where: { id: pool.id } });
  return result;
}

/** Says whether the worker died on every run of the job or on some of them. */
async function crashReason(tx: Tx, jobId: string, crashes: number, where: string): Promise<string> {
  const [{ runs }] = await tx.$queryRaw<{ runs: bigint }[]>`SELECT count(*) AS "runs" FROM "JobEvent" WHERE "jobId" = ${jobId}::uuid AND "status" = 'running'`;
  const how = crashes >= Number(runs) ? `on every attempt (${crashes})` : `on ${crashes} of its ${Number(runs)} attempts`;
  return `The worker running it stopped answering ${how}, the last time on ${where}; it was ended rather than handed to yet another worker. Look in that worker's log or the system log for why it stopped (running out of memory is the usual cause), then start it again`;
}
