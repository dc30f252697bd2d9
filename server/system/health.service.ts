import type { Db } from "../db";
import type { Health } from "./system.schemas";

/** Database reachable, a worker seen recently, and how much work waits. */
export async function checkHealth(db: Db, { staleAfterMs }: { staleAfterMs: number }): Promise<Health> {
  const checkedAt = new Date();
  const started = performance.now();
  try {
    await db.$queryRaw`SELECT 1`;
  } catch (error) {
    return {
      status: "degraded",
      database: { ok: false, latencyMs: null, error: `Cannot reach the database: ${(error as Error).message.split("\n")[0]}` },
      worker: { ok: false, lastSeen: null, workers: 0 },
      queue: { depth: null, running: null },
      checkedAt,
    };
  }
  const latencyMs = Math.round((performance.now() - started) * 10) / 10;
  const cutoff = new Date(checkedAt.getTime() - staleAfterMs);
  const [latest, live, queued, running] = await Promise.all([
    db.workerHeartbeat.findFirst({ orderBy: { lastSeen: "desc" }, select: { lastSeen: true } }),
    db.workerHeartbeat.count({ where: { lastSeen: { gte: cutoff } } }),
    db.job.count({ where: { status: "queued" } }),
    db.job.count({ where: { status: "running" } }),
  ]);
  const workerOk = live > 0;
  return {
    status: workerOk ? "ok" : "degraded",
    database: { ok: true, latencyMs },
    worker: { ok: workerOk, lastSeen: latest?.lastSeen ?? null, workers: live },
    queue: { depth: queued, running },
    checkedAt,
  };
}
