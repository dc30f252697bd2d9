"use client";

import { useQuery } from "@tanstack/react-query";

/** What `GET /api/health` answers, as JSON (dates as strings). */
interface HealthReport {
  status: "ok" | "degraded";
  database: { ok: boolean; error?: string };
  worker: { ok: boolean; lastSeen: string | null };
  queue: { depth: number | null };
  jobs?: { ok: boolean; problems: string[] };
}

/** The health report, or null when the portal could not be asked or did not answer with one. */
async function fetchHealth(): Promise<HealthReport | null> {
  try {
    const res = await fetch("/api/health", { cache: "no-store" });
    if (res.status !== 200 && res.status !== 503) return null;
    return (await res.json()) as HealthReport;
  } catch {
    return null;
  }
}

/**
 * Says so at the top of every page when the worker is down, the database is unreachable, or
 * jobs are stuck.
 * Reads the public health route, not tRPC: every tRPC call needs the database, so it could
 * never report the database gone.
 */
export function HealthBanner() {
  const health = useQuery({ queryKey: ["health"], queryFn: fetchHealth, refetchInterval: 10_000, staleTime: 0, retry: false });
  if (health.isPending) return null;
  const report = health.data;
  let message: string | null = null;
  if (!report) {
    message = "Gantry is not answering (the portal is restarting, or the network to it is down): pages may fail to load until it is back.";
  } else if (!report.database.ok) {
    message = "Gantry cannot reach its database: pages may fail to load until it is back.";
  } else if (!report.worker.ok) {
    const lastSeen = report.worker.lastSeen ? new Date(report.worker.lastSeen) : null;
    message = `The worker is not running${lastSeen ? ` (last seen ${lastSeen.toLocaleTimeString()})` : ""}: jobs wait in the queue${report.queue.depth ? ` (${report.queue.depth} waiting)` : ""} until it is back. Start it with npm start.`;
  } else if (report.jobs && !report.jobs.ok && report.jobs.problems.length) {
    message = `Some jobs are stuck: ${report.jobs.problems.join("; ")}.`;
  }
  if (!message) return null;
  return (
    <div role="alert" className="border-b border-amber-300 bg-amber-50 px-4 py-2 text-sm text-amber-900 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-200">
      {message}
    </div>
  );
}
