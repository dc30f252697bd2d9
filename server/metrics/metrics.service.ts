import type { Db } from "../db";
import type { Env } from "../env";
import { checkInstanceAdmin } from "../auth/instance-admins.service";
import { jobCatalog } from "../jobs/catalog";
import { UTC_NOW } from "../jobs/job-events.sql";
import { handoffWindowMs } from "../system/heartbeat.service";
import { histogramQuantile, renderExposition, type MetricFamily } from "./exposition";
import { durationBuckets, type MetricsFigures } from "./metrics.schemas";
import { processSeries, readProcessMetrics } from "./process-metrics";

// What the portal and its workers are doing, for Prometheus (/api/metrics) and the health page.
// Figures about jobs and the queue are read from Postgres at each scrape, so they are the same
// whichever process answers; per-process figures come from the rows each process writes
// (process-metrics.ts). Durations are a histogram over every finished job the database holds,
// so they count up as jobs end (and down if an organisation and its jobs are deleted, which
// Prometheus reads as a counter reset).

type Settings = Pick<Env, "WORKER_HEARTBEAT_MS" | "WORKER_STALE_AFTER_MS">;


export async function collectMetrics(db: Db, settings: Settings): Promise<MetricsFigures> {
  const bounds = [...durationBuckets];
  // Bucket i holds durations in (bounds[i-1], bounds[i]], as Prometheus's `le` does:
  // width_bucket on the negated value counts the bounds at or above it.
  const negated = [...bounds].reverse().map((b) => -b);
  const [workers, jobs, queue, durations, throughput, processes] = await Promise.all([
    db.$queryRaw<{ live: bigint; stale: bigint }[]>`
      SELECT count(*) FILTER (WHERE "lastSeen" >= ${UTC_NOW} - make_interval(secs => ${settings.WORKER_STALE_AFTER_MS / 1000})) AS "live",
        count(*) FILTER (WHERE "lastSeen" < ${UTC_NOW} - make_interval(secs => ${settings.WORKER_STALE_AFTER_MS / 1000})) AS "stale"
      FROM "WorkerHeartbeat"`,
    db.job.groupBy({ by: ["kind", "status"], _count: { _all: true }, orderBy: [{ kind: "asc" }, { status: "asc" }] }),
    // Waiting: free to run now. Scheduled: a retry's backoff or a later start. Failed: out of attempts.
    db.$queryRaw<{ kind: string; waiting: bigint; scheduled: bigint; running: bigint; failed: bigint; oldest: number | null }[]>`
      SELECT t.identifier AS "kind",
        count(*) FILTER (WHERE j.locked_at IS NULL AND j.attempts < j.max_attempts AND j.run_at <= now()) AS "waiting",
        count(*) FILTER (WHERE j.locked_at IS NULL AND j.attempts < j.max_attempts AND j.run_at > now()) AS "scheduled",
        count(*) FILTER (WHERE j.locked_at IS NOT NULL) AS "running",
        count(*) FILTER (WHERE j.locked_at IS NULL AND j.attempts >= j.max_attempts) AS "failed",
        extract(epoch FROM now() - min(j.run_at) FILTER (WHERE j.locked_at IS NULL AND j.attempts < j.max_attempts AND j.run_at <= now()))::float8 AS "oldest"
      FROM graphile_worker._private_jobs j JOIN graphile_worker._private_tasks t ON t.id = j.task_id
      GROUP BY t.identifier`,
    db.$queryRaw<{ kind: string; status: "succeeded" | "failed"; bucket: number; n: bigint; sum: number }[]>`
      SELECT "kind", "status"::text AS "status", ${bounds.length} - width_bucket(-d, ${negated}::float8[]) AS "bucket", count(*) AS "n", sum(d)::float8 AS "sum"
      FROM (
        SELECT "kind", "status", extract(epoch FROM "finishedAt" - "startedAt")::float8 AS d FROM "Job"
        WHERE "finishedAt" IS NOT NULL AND "startedAt" IS NOT NULL AND "status" IN ('succeeded', 'failed')
      ) AS finished
      GROUP BY 1, 2, 3`,
    db.$queryRaw<{ minute: Date; kind: string; status: string; n: bigint }[]>`
      SELECT date_trunc('minute', "finishedAt") AS "minute", "kind", "status"::text AS "status", count(*) AS "n"
      FROM "Job" WHERE "finishedAt" >= ${UTC_NOW} - interval '1 hour'
      GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
    readProcessMetrics(db),
  ]);

  // Every kind the catalog knows appears in the queue figures, at zero when idle.
  const queueByKind = new Map(queue.map((q) => [q.kind, q]));
  const kinds = [...new Set([...jobCatalog.map((d) => d.name), ...queue.map((q) => q.kind)])].sort();
  const histograms = new Map<string, MetricsFigures["durations"]["series"][number]>();
  for (const row of durations) {
    const key = `${row.kind}\n${row.status}`;
    let h = histograms.get(key);
    if (!h) histograms.set(key, (h = { kind: row.kind, status: row.status, counts: new Array(bounds.length + 1).fill(0), sum: 0, p50: null, p95: null }));
    h.counts[row.bucket] += Number(row.n);
    h.sum += row.sum;
  }
  for (const h of histograms.values()) {
    h.p50 = histogramQuantile(bounds, h.counts, 0.5);
    h.p95 = histogramQuantile(bounds, h.counts, 0.95);
  }
  return {
    at: new Date(),
    workers: { live: Number(workers[0]?.live ?? 0), stale: Number(workers[0]?.stale ?? 0) },
    handoffWindowSeconds: handoffWindowMs({ heartbeatMs: settings.WORKER_HEARTBEAT_MS, staleAfterMs: settings.WORKER_STALE_AFTER_MS }) / 1000,
    jobs: jobs.map((j) => ({ kind: j.kind, status: j.status, count: j._count._all })),
    queue: kinds.map((kind) => {
      const q = queueByKind.get(kind);
      return { kind, waiting: Number(q?.waiting ?? 0), scheduled: Number(q?.scheduled ?? 0), running: Number(q?.running ?? 0), failed: Number(q?.failed ?? 0), oldestWaitingSeconds: q?.oldest ?? null };
    }),
    durations: { buckets: bounds, series: [...histograms.values()].sort((a, b) => a.kind.localeCompare(b.kind) || a.status.localeCompare(b.status)) },
    throughput: throughput.map((t) => ({ minute: t.minute, kind: t.kind, status: t.status, count: Number(t.n) })),
    processes,
  };
}

/** The figures in Prometheus's text format. */
export function renderMetrics(figures: MetricsFigures): string {
  const families: MetricFamily[] = [
    { name: "gantry_jobs", type: "gauge", help: "Jobs the database holds, by kind and status.", samples: figures.jobs.map((j) => ({ labels: { kind: j.kind, status: j.status }, value: j.count })) },
    {
      name: "gantry_queue_jobs",
      type: "gauge",
      help: "Queue entries by kind and state: waiting (free to run now), scheduled (a later start or a retry's backoff), running (held by a worker), failed (out of attempts).",
      samples: figures.queue.flatMap((q) => (["waiting", "scheduled", "running", "failed"] as const).map((state) => ({ labels: { kind: q.kind, state }, value: q[state] }))),
    },
    { name: "gantry_queue_oldest_waiting_seconds", type: "gauge", help: "How long the oldest entry free to run has waited for a worker, by kind (0 when none waits).", samples: figures.queue.map((q) => ({ labels: { kind: q.kind }, value: q.oldestWaitingSeconds ?? 0 })) },
    {
      name: "gantry_job_duration_seconds",
      type: "histogram",
      help: "From a job's first start to its end, retries included, for every finished job the database holds, by kind and outcome.",
      buckets: figures.durations.buckets,
      series: figures.durations.series.map((s) => ({ labels: { kind: s.kind, status: s.status }, counts: s.counts, sum: s.sum })),
    },
    { name: "gantry_workers", type: "gauge", help: "Worker pools by heartbeat: live, or stale (not heard from within WORKER_STALE_AFTER_MS; their jobs are being handed on).", samples: [{ labels: { state: "live" }, value: figures.workers.live }, { labels: { state: "stale" }, value: figures.workers.stale }] },
    { name: "gantry_worker_handoff_window_seconds", type: "gauge", help: "At the latest this long after a worker dies, its jobs run on another worker.", samples: [{ value: figures.handoffWindowSeconds }] },
    ...Object.entries(processSeries).map(([name, meta]): MetricFamily => ({
      name,
      type: meta.type,
      help: meta.help,
      samples: figures.processes.filter((p) => p.name === name).map((p) => ({ labels: { process: p.process, ...p.labels }, value: p.value })),
    })),
  ];
  return renderExposition(families);
}

/** The health page's figures, for instance admins only. */
export async function getHealthFigures(db: Db, { userId, settings }: { userId: string; settings: Settings & Pick<Env, "INSTANCE_ADMINS"> }): Promise<MetricsFigures> {
  await checkInstanceAdmin(db, { userId, instanceAdmins: settings.INSTANCE_ADMINS });
  return collectMetrics(db, settings);
}
