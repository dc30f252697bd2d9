import type { Db } from "../db";
import { OutageLog } from "../db/availability";
import type { Health } from "./system.schemas";

/** How long a job free to run may wait for a worker before it counts as overdue. */
export const OVERDUE_AFTER_MS = 10 * 60_000;
/** How long a running job may report nothing before it counts as silent. */
export const SILENT_AFTER_MS = 30 * 60_000;
/** A job without a runnable queue entry for this long will not be run by any worker. */
export const STRANDED_AFTER_MS = 2 * 60_000;

// One line when the database stops answering and one when it is back, not one per check
// (the health route is polled by every open page and by monitors).
const databaseOutage = new OutageLog("Health check", (m) => console.error(m));

export interface HealthOptions {
  staleAfterMs: number;
  overdueAfterMs?: number;
  silentAfterMs?: number;
  strandedAfterMs?: number;
  outage?: OutageLog;
}


/** Database reachable, a worker seen recently, how much work waits, and whether any of it is stuck. */
export async function checkHealth(db: Db, { staleAfterMs, overdueAfterMs = OVERDUE_AFTER_MS, silentAfterMs = SILENT_AFTER_MS, strandedAfterMs = STRANDED_AFTER_MS, outage = databaseOutage }: HealthOptions): Promise<Health> {
  const checkedAt = new Date();
  const started = performance.now();
  try {
    await db.$queryRaw`SELECT 1`;
    outage.recovered();
  } catch (error) {
    outage.failed(error);
    return {
      status: "degraded",
      database: { ok: false, latencyMs: null, error: "Gantry cannot reach its database; the server log says why" },
      worker: { ok: false, lastSeen: null, workers: 0 },
      queue: { depth: null, running: null },
      jobs: { ok: false, overdue: null, silent: null, stranded: null, problems: [] },
      checkedAt,
    };
  }
  const latencyMs = Math.round((performance.now() - started) * 10) / 10;
  const [[workers], queued, running, [overdue], [silent], [stranded]] = await Promise.all([
    // On the database's clock, like the heartbeats themselves.
    db.$queryRaw<{ lastSeen: Date | null; live: bigint }[]>`
      SELECT max("lastSeen") AS "lastSeen", count(*) FILTER (WHERE "lastSeen" >= (now() AT TIME ZONE 'UTC') - make_interval(secs => ${staleAfterMs / 1000})) AS "live"
      FROM "WorkerHeartbeat"`,
    db.job.count({ where: { status: "queued" } }),
    db.job.count({ where: { status: "running" } }),
    // Free to run (not locked, attempts left, its queue not busy with another) yet not taken.
    db.$queryRaw<{ n: bigint; kind: string | null }[]>`
      SELECT count(*) AS n, (array_agg(t.identifier ORDER BY j.run_at))[1] AS kind
      FROM graphile_worker._private_jobs j
      JOIN graphile_worker._private_tasks t ON t.id = j.task_id
      LEFT JOIN graphile_worker._private_job_queues q ON q.id = j.job_queue_id
      WHERE j.is_available AND (q.id IS NULL OR q.is_available) AND j.run_at < now() - make_interval(secs => ${overdueAfterMs / 1000})`,
    // Running, and its last event (the job's own clock of progress) is old.
    db.$queryRaw<{ n: bigint; kind: string | null }[]>`
      SELECT count(*) AS n, (array_agg(j."kind" ORDER BY e."at"))[1] AS kind
      FROM "Job" j JOIN "JobEvent" e ON e."jobId" = j."id" AND e."seq" = j."lastSeq"
      WHERE j."status" = 'running' AND e."at" < (now() AT TIME ZONE 'UTC') - make_interval(secs => ${silentAfterMs / 1000})`,
    // Queued or running, but nothing on the queue will ever run it.
    db.$queryRaw<{ n: bigint; kind: string | null }[]>`
      SELECT count(*) AS n, (array_agg(j."kind" ORDER BY e."at"))[1] AS kind
      FROM "Job" j JOIN "JobEvent" e ON e."jobId" = j."id" AND e."seq" = j."lastSeq"
      WHERE j."status" IN ('queued', 'running') AND e."at" < (now() AT TIME ZONE 'UTC') - make_interval(secs => ${strandedAfterMs / 1000})
        AND NOT EXISTS (
          SELECT 1 FROM graphile_worker._private_jobs q
          WHERE q.payload->>'jobId' = j."id"::text AND (q.locked_by IS NOT NULL OR q.attempts < q.max_attempts))`,
  ]);
  const live = Number(workers.live);
  const workerOk = live > 0;
  const problems: string[] = [];
  const counted = (n: bigint) => Number(n);
  if (counted(overdue.n)) problems.push(`${plural(counted(overdue.n), "job has", "jobs have")} waited more than ${minutes(overdueAfterMs)} for a worker to start ${counted(overdue.n) === 1 ? "it" : "them"} (the oldest: ${overdue.kind}): the workers are all busy, or stuck — restart them or add more`);
  if (counted(silent.n)) problems.push(`${plural(counted(silent.n), "running job has", "running jobs have")} reported nothing for more than ${minutes(silentAfterMs)} (the oldest: ${silent.kind}): ${counted(silent.n) === 1 ? "its" : "their"} worker may be stuck — cancel and retry ${counted(silent.n) === 1 ? "it" : "them"}, or restart the worker`);
  if (counted(stranded.n)) problems.push(`${plural(counted(stranded.n), "job is", "jobs are")} queued or running but no longer on the queue, so no worker will run ${counted(stranded.n) === 1 ? "it" : "them"} (e.g. ${stranded.kind}) — cancel and retry ${counted(stranded.n) === 1 ? "it" : "them"}`);
  const jobsOk = problems.length === 0;
  return {
    status: workerOk && jobsOk ? "ok" : "degraded",
    database: { ok: true, latencyMs },
    worker: { ok: workerOk, lastSeen: workers.lastSeen, workers: live },
    queue: { depth: queued, running },
    jobs: { ok: jobsOk, overdue: counted(overdue.n), silent: counted(silent.n), stranded: counted(stranded.n), problems },
    checkedAt,
  };
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
const minutes = (ms: number) => (ms >= 60_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`);
