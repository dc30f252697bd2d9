import type { Db } from "../db";
import type { Health } from "./system.schemas";

/** Database reachable, a worker seen recently, and how much work waits. */
export async function checkHealth(db: Db, { staleAfterMs }: { staleAfterMs: number }): Promise<Health> {
  const checkedAt = new Date();
  const started = performance.now();
  try {
    await db.$queryRaw`SELECT 1`;
  } catch (error) {
    console.error("Health check: the database did not answer", error);
    return {
      status: "degraded",
      database: { ok: false, latencyMs: null, error: "Gantry cannot reach its database; the server log says why" },
      worker: { ok: false, lastSeen: null, workers: 0 },
      queue: { depth: null, running: null },
      checkedAt,
    };
  }
  const latencyMs = Math.round((performance.now() - started) * 10) / 10;
  const [[workers], queued, running] = await Promise.all([
    // On the database's clock, like the heartbeats themselves.
    db.$queryRaw<{ lastSeen: Date | null; live: bigint }[]>`
      SELECT max("lastSeen") AS "lastSeen", count(*) FILTER (WHERE "lastSeen" >= (now() AT TIME ZONE 'UTC') - make_interval(secs => ${staleAfterMs / 1000})) AS "live"
      FROM "WorkerHeartbeat"`,
    db.job.count({ where: { status: "queued" } }),
    db.job.count({ where: { status: "running" } }),
  ]);
  const live = Number(workers.live);
  const workerOk = live > 0;
  return {
    status: workerOk ? "ok" : "degraded",
    database: { ok: true, latencyMs },
    worker: { ok: workerOk, lastSeen: workers.lastSeen, workers: live },
    queue: { depth: queued, running },
    checkedAt,
  };
}
