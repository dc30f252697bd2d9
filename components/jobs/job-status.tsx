import { Badge, type Tone } from "@/components/ui/badge";
import { ProgressBar } from "@/components/ui/progress-bar";
import type { JobDto } from "@/server/jobs/jobs.schemas";

const tones: Record<JobDto["status"], Tone> = { queued: "neutral", running: "blue", succeeded: "green", failed: "red", cancelled: "amber" };

export function JobStatusBadge({ status, cancelRequested }: { status: JobDto["status"]; cancelRequested?: boolean }) {
  return <Badge tone={tones[status]}>{status === "running" && cancelRequested ? "cancelling" : status}</Badge>;
}

export function JobProgress({ job }: { job: Pick<JobDto, "progress" | "status" | "title" | "step"> }) {
  const tone = job.status === "failed" ? "red" : job.status === "cancelled" ? "amber" : job.status === "succeeded" ? "green" : "blue";
  return (
    <div className="flex min-w-40 items-center gap-2">
      <ProgressBar value={job.progress} label={`${job.title} progress`} tone={tone} />
      <span className="w-10 text-right text-xs tabular-nums text-zinc-500">{Math.round(job.progress * 100)}%</span>
    </div>
  );
}
