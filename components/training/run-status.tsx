import { Badge, type Tone } from "@/components/ui/badge";

const tones: Record<string, Tone> = {
  queued: "neutral",
  syncing: "blue",
  launching: "blue",
  running: "blue",
  fetching: "blue",
  unreachable: "amber",
  succeeded: "green",
  failed: "red",
  cancelled: "neutral",
  lost: "red",
};

const words: Record<string, string> = {
  queued: "queued",
  syncing: "syncing dataset",
  launching: "launching",
  running: "training",
  fetching: "fetching checkpoint",
  unreachable: "host unreachable",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "cancelled",
  lost: "lost",
};

export function RunStatusBadge({ status }: { status: string }) {
  return <Badge tone={tones[status] ?? "neutral"}>{words[status] ?? status}</Badge>;
}

export const isRunActive = (status: string) => ["queued", "syncing", "launching", "running", "unreachable", "fetching"].includes(status);
