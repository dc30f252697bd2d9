"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useEffect, useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { cn } from "@/components/ui/cn";
import { PageHeader } from "@/components/ui/page-header";
import { ProgressBar } from "@/components/ui/progress-bar";
import { formatDuration, RelativeTime } from "@/components/ui/time";
import { errorMessage, useTRPC } from "@/components/trpc";
import { hasRole } from "@/server/auth/roles";
import type { JobEventDto } from "@/server/jobs/jobs.schemas";
import { JobStatusBadge } from "./job-status";
import { useJobLog } from "./use-job-log";
import { useLiveStatus } from "./use-live-jobs";

const levelStyle: Record<JobEventDto["level"], string> = {
  debug: "text-zinc-400",
  info: "text-zinc-700 dark:text-zinc-300",
  warn: "text-amber-700 dark:text-amber-400",
  error: "text-red-700 dark:text-red-400",
};

export function Elapsed({ from, to }: { from: Date | null; to: Date | null }) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (to) return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [to]);
  if (!from) return <>not started</>;
  return <>{formatDuration((to?.getTime() ?? now) - from.getTime())}</>;
}

export function JobDetail({ jobId }: { jobId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const me = useQuery(trpc.auth.me.queryOptions());
  const { job, events } = useJobLog(jobId);
  const liveStatus = useLiveStatus();

  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.jobs.get.queryKey({ jobId }) });
  const cancel = useMutation(trpc.jobs.cancel.mutationOptions({ onSuccess: refresh }));
  const retry = useMutation(trpc.jobs.retry.mutationOptions({ onSuccess: refresh }));
  const canOperate = me.data?.currentOrg ? hasRole(me.data.currentOrg.role, "operator") : false;

  if (job.error) return <Alert title="Cannot show this job">{errorMessage(job.error)}</Alert>;
  if (!job.data) return <p className="text-sm text-zinc-500">Loading…</p>;
  const j = job.data;
  const isActive = j.status === "queued" || j.status === "running";

  return (
    <>
      <nav aria-label="Breadcrumb" className="mb-2 text-sm text-zinc-500"><Link href="/jobs" className="hover:underline">Jobs</Link> / {j.id.slice(0, 8)}</nav>
      <PageHeader
        title={j.subject ? `${j.title} · ${j.subject}` : j.title}
        description={<span className="font-mono text-xs">{j.kind} · {j.id}</span>}
        actions={canOperate && (
          <>
            {isActive && <Button variant="danger" onClick={() => confirm("Cancel this job? Its work so far stops; you can retry it afterwards.") && cancel.mutate({ jobId })} disabled={cancel.isPending || j.cancelRequested}>{j.cancelRequested ? "Cancelling…" : "Cancel job"}</Button>}
            {(j.status === "failed" || j.status === "cancelled") && <Button variant="secondary" onClick={() => retry.mutate({ jobId })} disabled={retry.isPending}>Retry</Button>}
          </>
        )}
      />
      {(cancel.error || retry.error) && <Alert className="mb-4">{errorMessage(cancel.error ?? retry.error)}</Alert>}
      {j.status === "failed" && j.error && <Alert className="mb-4" title="This job failed">{j.error}</Alert>}
      <Card className="mb-6">
        <CardBody className="space-y-4">
          <div className="flex flex-wrap items-center gap-3">
            <span data-testid="job-status"><JobStatusBadge status={j.status} cancelRequested={j.cancelRequested} /></span>
            <span className="text-sm font-medium" data-testid="job-step">{j.step ?? (j.status === "queued" ? "Waiting for a worker" : "—")}</span>
            <span className="ml-auto text-2xl font-semibold tabular-nums" data-testid="job-percent">{Math.round(j.progress * 100)}%</span>
          </div>
          <ProgressBar value={j.progress} label="Job progress" tone={j.status === "failed" ? "red" : j.status === "cancelled" ? "amber" : j.status === "succeeded" ? "green" : "blue"} className="h-3" />
          <dl className="grid grid-cols-2 gap-4 text-sm sm:grid-cols-4">
            <div><dt className="text-zinc-500">Elapsed</dt><dd className="tabular-nums"><Elapsed from={j.startedAt} to={j.finishedAt} /></dd></div>
            <div><dt className="text-zinc-500">Attempt</dt><dd>{j.attempts} of {j.maxAttempts}</dd></div>
            <div><dt className="text-zinc-500">Started by</dt><dd>{j.createdBy ?? "system"}</dd></div>
            <div><dt className="text-zinc-500">Created</dt><dd><RelativeTime date={j.createdAt} /></dd></div>
          </dl>
        </CardBody>
      </Card>
      <Card>
        <CardHeader title="Log" description={liveStatus === "pending" ? "Following live" : liveStatus === "connecting" ? "Connecting…" : liveStatus === "error" ? "Live updates interrupted; reconnecting" : undefined} />
        <ol aria-live="polite" aria-label="Job log" className="max-h-[32rem] overflow-y-auto px-5 py-3 font-mono text-xs">
          {events.map((e) => (
            <li key={e.seq} className={cn("flex gap-3 py-0.5", levelStyle[e.level])}>
              <time className="shrink-0 text-zinc-400" dateTime={e.at.toISOString()}>{e.at.toLocaleTimeString()}</time>
              <span className="w-12 shrink-0 text-right tabular-nums text-zinc-400">{e.progress != null ? `${Math.round(e.progress * 100)}%` : ""}</span>
              <span>{e.message}</span>
            </li>
          ))}
          {events.length === 0 && <li className="text-zinc-400">No events yet.</li>}
        </ol>
      </Card>
    </>
  );
}
