import { Badge, type Tone } from "@/components/ui/badge";
import type { ModelVersionView } from "@/server/models/models.schemas";

const tones: Record<ModelVersionView["status"], Tone> = { fetching: "blue", validating: "blue", ready: "green", invalid: "red", failed: "red" };

export function VersionStatus({ status }: { status: ModelVersionView["status"] }) {
  return <Badge tone={tones[status]}>{status}</Badge>;
}

export function formatBytes(bytes: number | null): string {
  if (bytes == null) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
