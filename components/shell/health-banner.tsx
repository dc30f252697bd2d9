"use client";

import { useQuery } from "@tanstack/react-query";
import { useTRPC } from "@/components/trpc";

/** Says so at the top of every page when the worker is down or the database is unreachable. */
export function HealthBanner() {
  const trpc = useTRPC();
  const health = useQuery({ ...trpc.system.health.queryOptions(), refetchInterval: 10_000 });
  if (!health.data || health.data.status === "ok") return null;
  const { database, worker, queue } = health.data;
  const message = !database.ok
    ? database.error ?? "The database cannot be reached."
    : `The worker is not running${worker.lastSeen ? ` (last seen ${worker.lastSeen.toLocaleTimeString()})` : ""}: jobs wait in the queue${queue.depth ? ` (${queue.depth} waiting)` : ""} until it is back. Start it with npm start.`;
  return (
    <div role="alert" className="border-b border-amber-300 bg-amber-50 px-4 py-2 text-sm text-amber-900 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-200">
      {message}
    </div>
  );
}
