import os from "node:os";
import type { Db } from "../db";

/** Records that these queue workers are alive. */
export async function recordHeartbeat(db: Db, workerIds: string[]): Promise<void> {
  const now = new Date();
  await db.$transaction(
    workerIds.map((id) =>
      db.workerHeartbeat.upsert({ where: { id }, create: { id, host: os.hostname(), pid: process.pid, lastSeen: now }, update: { lastSeen: now } }),
    ),
  );
}

export async function removeHeartbeats(db: Db, workerIds: string[]): Promise<void> {
  await db.workerHeartbeat.deleteMany({ where: { id: { in: workerIds } } });
}

/**
 * Releases the jobs of workers that stopped beating (a crash, a kill -9): they run again
 * from their last durable state instead of waiting hours for the queue's lock to expire.
 */
export async function releaseDeadWorkers(db: Db, staleAfterMs: number): Promise<string[]> {
  const cutoff = new Date(Date.now() - staleAfterMs);
  const dead = await db.workerHeartbeat.findMany({ where: { lastSeen: { lt: cutoff } }, select: { id: true } });
  if (dead.length === 0) return [];
  const ids = dead.map((d) => d.id);
  await db.$executeRaw`SELECT graphile_worker.force_unlock_workers(${ids}::text[])`;
  await db.workerHeartbeat.deleteMany({ where: { id: { in: ids } } });
  return ids;
}
