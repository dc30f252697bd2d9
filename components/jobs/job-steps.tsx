"use client";

import Link from "next/link";
import { Alert } from "@/components/ui/alert";
import { cn } from "@/components/ui/cn";
import { ProgressBar } from "@/components/ui/progress-bar";
import { formatDuration } from "@/components/ui/time";
import type { JobDto, JobEventDto } from "@/server/jobs/jobs.schemas";
import { Elapsed } from "./job-detail";
import { JobStatusBadge } from "./job-status";
import { useJobLog } from "./use-job-log";

type StepState = "waiting" | "running" | "done" | "failed";

interface StepView {
  label: string;
  state: StepState;
  /** Progress when the step began. */
  at: number;
  startedAt: Date | null;
  endedAt: Date | null;
}

/** Each named step's state and times, from the job's event log (the steps arrive as `step` on events). */
export function stepsFromEvents(labels: ReadonlyArray<{ label: string; at: number }>, events: JobEventDto[], job: Pick<JobDto, "status" | "finishedAt">): StepView[] {
  const firstAt = new Map<string, Date>();
  for (const e of events) if (e.step && !firstAt.has(e.step)) firstAt.set(e.step, e.at);
  const lastStarted = labels.reduce((last, s, i) => (firstAt.has(s.label) ? i : last), -1);
  return labels.map((s, i) => {
    const startedAt = firstAt.get(s.label) ?? null;
    const next = labels.slice(i + 1).map((n) => firstAt.get(n.label)).find(Boolean) ?? null;
    let state: StepState = "waiting";
    if (startedAt && i < lastStarted) state = "done";
    else if (startedAt && i === lastStarted) {
      state = job.status === "succeeded" ? "done" : job.status === "failed" || job.status === "cancelled" ? "failed" : "running";
    }
    const endedAt = state === "done" || state === "failed" ? (next ?? job.finishedAt) : null;
    return { label: s.label, state, at: s.at, startedAt, endedAt };
  });
}

const marks: Record<StepState, string> = { waiting: "○", running: "◐", done: "✓", failed: "✕" };
const markStyle: Record<StepState, string> = {
  waiting: "text-zinc-400",
  running: "animate-pulse text-brand-600",
  done: "text-emerald-600",
  failed: "text-red-600",
};

/**
 * A job's named steps, followed live: which are done, which is running, how far along the
 * job is and how long each step took. Works after a reload too: it reads the job's log.
 */
export function JobSteps({ jobId, steps, title }: { jobId: string; steps: ReadonlyArray<{ label: string; at: number }>; title?: string }) {
  const { job, events } = useJobLog(jobId);
  if (job.error) return <Alert title="Cannot show the job">{job.error.message}</Alert>;
  if (!job.data) return <p className="text-sm text-zinc-500">Loading…</p>;
  const j = job.data;
  const views = stepsFromEvents(steps, events, j);
  const tone = j.status === "failed" ? "red" : j.status === "cancelled" ? "amber" : j.status === "succeeded" ? "green" : "blue";
  return (
    <div className="space-y-4" data-testid="job-steps">
      <div className="flex flex-wrap items-center gap-3">
        <span data-testid="job-status"><JobStatusBadge status={j.status} cancelRequested={j.cancelRequested} /></span>
        <span className="text-sm font-medium">{title ?? j.title}</span>
        <span className="text-sm tabular-nums text-zinc-500">elapsed <Elapsed from={j.startedAt} to={j.finishedAt} /></span>
        <Link href={`/jobs/${j.id}`} className="text-sm text-brand-600 hover:underline">Job log</Link>
        <span className="ml-auto text-2xl font-semibold tabular-nums" data-testid="job-percent">{Math.round(j.progress * 100)}%</span>
      </div>
      <ProgressBar value={j.progress} label={`${j.title} progress`} tone={tone} className="h-3" />
      <ol className="grid gap-2 sm:grid-cols-3 lg:grid-cols-6" aria-label="Steps">
        {views.map((s, i) => (
          <li key={s.label} data-state={s.state} data-testid={`step-${i + 1}`} className={cn("rounded-lg border px-3 py-2 text-sm", s.state === "running" ? "border-brand-500/50 bg-brand-50 dark:bg-brand-700/20" : s.state === "failed" ? "border-red-300 bg-red-50 dark:border-red-800 dark:bg-red-950/30" : "border-zinc-200 dark:border-zinc-800")}>
            <div className="flex items-center gap-2">
              <span aria-hidden className={cn("font-mono", markStyle[s.state])}>{marks[s.state]}</span>
              <span className="font-medium">{s.label}</span>
            </div>
            <div className="mt-1 flex justify-between text-xs tabular-nums text-zinc-500">
              <span>{Math.round(s.at * 100)}%</span>
              <span>{s.startedAt && s.endedAt ? formatDuration(s.endedAt.getTime() - s.startedAt.getTime()) : s.state === "running" ? <Elapsed from={s.startedAt} to={null} /> : s.state}</span>
            </div>
          </li>
        ))}
      </ol>
      {j.status === "failed" && j.error && <Alert title="The deploy failed">{j.error}</Alert>}
    </div>
  );
}
