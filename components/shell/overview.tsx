"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { PageHeader } from "@/components/ui/page-header";
import { Badge } from "@/components/ui/badge";
import { RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { JobTable } from "@/components/jobs/job-table";
import { StartSelftestButton } from "@/components/jobs/start-selftest-button";
import { Alert } from "@/components/ui/alert";
import { GettingStarted } from "./getting-started";

function Stat({ label, value }: { label: string; value: number | string }) {
  return (
    <Card>
      <CardBody>
        <p className="text-xs font-medium uppercase tracking-wide text-zinc-500">{label}</p>
        <p className="mt-1 text-2xl font-semibold tabular-nums">{value}</p>
      </CardBody>
    </Card>
  );
}

export function Overview() {
  const trpc = useTRPC();
  const overview = useQuery({ ...trpc.system.overview.queryOptions(), refetchInterval: 15_000 });
  const me = useQuery(trpc.auth.me.queryOptions());
  const d = overview.data;
  return (
    <>
      <PageHeader title={me.data?.currentOrg?.name ?? "Overview"} description="What is running, what ran, and whether Gantry is healthy." actions={<StartSelftestButton openDetail />} />
      {overview.error && <Alert className="mb-6">{errorMessage(overview.error)}</Alert>}
      <GettingStarted />
      <div className="grid grid-cols-2 gap-4 md:grid-cols-4">
        <Stat label="Running" value={d?.jobCounts.running ?? "–"} />
        <Stat label="Queued" value={d?.jobCounts.queued ?? "–"} />
        <Stat label="Failed" value={d?.jobCounts.failed ?? "–"} />
        <Stat label="Members" value={d?.members ?? "–"} />
      </div>
      <div className="mt-6 grid gap-6 lg:grid-cols-3">
        <Card className="min-w-0 lg:col-span-2">
          <CardHeader title="Recent jobs" actions={<Link href="/jobs" className="text-sm font-medium text-brand-600 hover:underline">All jobs</Link>} />
          {d ? <JobTable jobs={d.recentJobs} caption="Recent jobs" /> : <p className="px-5 py-10 text-sm text-zinc-500">Loading…</p>}
        </Card>
        <Card className="min-w-0">
          <CardHeader title="Health" />
          <CardBody className="space-y-3 text-sm">
            {d && (
              <dl className="space-y-3">
                <div className="flex items-center justify-between">
                  <dt>Database</dt>
                  <dd>{d.health.database.ok ? <Badge tone="green">ok · {d.health.database.latencyMs} ms</Badge> : <Badge tone="red">down</Badge>}</dd>
                </div>
                <div className="flex items-center justify-between">
                  <dt>Worker</dt>
                  <dd>{d.health.worker.ok ? <Badge tone="green">{d.health.worker.workers} running</Badge> : <Badge tone="red">not running</Badge>}</dd>
                </div>
                <div className="flex items-center justify-between">
                  <dt>Last heartbeat</dt>
                  <dd className="text-zinc-500">{d.health.worker.lastSeen ? <RelativeTime date={d.health.worker.lastSeen} /> : "never"}</dd>
                </div>
                <div className="flex items-center justify-between">
                  <dt>Queue depth</dt>
                  <dd className="tabular-nums">{d.health.queue.depth ?? "–"}</dd>
                </div>
                <div className="flex items-center justify-between">
                  <dt>Stuck jobs</dt>
                  <dd>{d.health.jobs.ok ? <Badge tone="green">none</Badge> : <Badge tone="red">{(d.health.jobs.overdue ?? 0) + (d.health.jobs.silent ?? 0) + (d.health.jobs.stranded ?? 0)}</Badge>}</dd>
                </div>
                {d.health.jobs.problems.map((p) => (
                  <p key={p} className="text-xs text-red-700 dark:text-red-300">{p}</p>
                ))}
              </dl>
            )}
          </CardBody>
        </Card>
      </div>
    </>
  );
}
