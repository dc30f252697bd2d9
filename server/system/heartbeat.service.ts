import os from "node:os";
import type { Db } from "../db";
import { Prisma } from "../generated/prisma/client";

// Liveness is judged on the database's clock alone, so workers on machines whose clocks
// disagree never declare each other dead.
const DB_NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;

/** Records that these queue workers are alive. */
export async function recordHeartbeat(db: Db, workerIds: string[]): Promise<void> {
  await db.$executeRaw`
    INSERT INTO "WorkerHeartbeat" ("id", "host", "pid", "startedAt", "lastSeen")
    SELECT unnest(${workerIds}::text[]), ${os.hostname()}, ${process.pid}, ${DB_NOW}, ${DB_NOW}
    ON CONFLICT ("id") DO UPDATE SET "lastSeen" = EXCLUDED."lastSeen"`;
}

export async function removeHeartbeats(db: Db, workerIds: string[]): Promise<void> {
  await db.workerHeartbeat.deleteMany({ where: { id: { in: workerIds } } });
}

/**
 * Releases the jobs of workers that stopped beating (a crash, a kill -9): they run again
 * from their last durable state instead of waiting hours for the queue's lock to expire.
 */
export async function releaseDeadWorkers(db: Db, staleAfterMs: number): Promise<string[]> {
  const dead = await db.$queryRaw<{ id: string }[]>`SELECT "id" FROM "WorkerHeartbeat" WHERE "lastSeen" < ${DB_NOW} - make_interval(secs => ${staleAfterMs / 1000})`;
  if (dead.length === 0) return [];
  const ids = dead.map((d) => d.id);
  await db.$executeRaw`SELECT graphile_worker.force_unlock_workers(${ids}::text[])`;
  await db.workerHeartbeat.deleteMany({ where: { id: { in: ids } } });
  return ids;
}
