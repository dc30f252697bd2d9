import { Badge } from "@/components/ui/badge";
import { ProgressBar } from "@/components/ui/progress-bar";

export function EpisodeStatus({ status, progress, isDeleted }: { status: "encoding" | "ready" | "failed"; progress?: number | null; isDeleted?: boolean }) {
  if (isDeleted) return <Badge className="whitespace-nowrap">deleted</Badge>;
  if (status === "ready") return <Badge tone="green" className="whitespace-nowrap">in dataset</Badge>;
  if (status === "failed") return <Badge tone="red" className="whitespace-nowrap">failed</Badge>;
  return (
    <span className="flex min-w-32 items-center gap-2">
      <Badge tone="blue">encoding</Badge>
      {progress !== null && progress !== undefined && <ProgressBar value={progress} label="Encoding progress" className="w-20" />}
      {progress !== null && progress !== undefined && <span className="text-xs tabular-nums text-zinc-500">{Math.round(progress * 100)}%</span>}
    </span>
  );
}

export function formatSeconds(s: number | null): string {
  if (s === null) return "—";
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`;
}
