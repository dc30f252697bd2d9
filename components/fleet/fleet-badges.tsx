import { Badge, type Tone } from "@/components/ui/badge";
import { cn } from "@/components/ui/cn";
import type { DeviceSummary } from "@/server/fleet/fleet.schemas";

type DeviceState = DeviceSummary["state"];

export const deviceTone: Record<DeviceState, Tone> = { online: "green", degraded: "amber", offline: "red", unknown: "neutral" };
const dot: Record<DeviceState, string> = { online: "bg-emerald-500", degraded: "bg-amber-500", offline: "bg-red-500", unknown: "bg-zinc-300 dark:bg-zinc-600" };

export function DeviceStateBadge({ state }: { state: DeviceState }) {
  return <Badge tone={deviceTone[state]}>{state}</Badge>;
}

/** The last checks, oldest first, as a strip of dots. */
export function StateStrip({ states }: { states: DeviceState[] }) {
  if (states.length === 0) return <span className="text-xs text-zinc-400">no checks yet</span>;
  return (
    <span className="inline-flex items-center gap-0.5" aria-label={`Last ${states.length} checks: ${states.join(", ")}`}>
      {states.map((s, i) => <span key={i} title={s} className={cn("h-3 w-1.5 rounded-sm", dot[s])} />)}
    </span>
  );
}

const targetTones: Record<string, Tone> = { pending: "neutral", queued: "blue", running: "blue", succeeded: "green", failed: "red", rolled_back: "amber", skipped: "neutral" };
export function TargetStateBadge({ state }: { state: string }) {
  return <Badge tone={targetTones[state] ?? "neutral"}>{state.replace("_", " ")}</Badge>;
}

const rolloutTones: Record<string, Tone> = { scheduled: "neutral", running: "blue", succeeded: "green", failed: "red", aborted: "red", cancelled: "amber" };
export function RolloutStatusBadge({ status }: { status: string }) {
  return <Badge tone={rolloutTones[status] ?? "neutral"}>{status}</Badge>;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}
