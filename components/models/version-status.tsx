import { Badge, type Tone } from "@/components/ui/badge";
import type { ModelVersionView } from "@/server/models/models.schemas";
import { validationReportSchema } from "@/server/models/validation.schemas";

const tones: Record<ModelVersionView["status"], Tone> = { fetching: "blue", validating: "blue", ready: "green", invalid: "red", failed: "red" };

export function VersionStatus({ status }: { status: ModelVersionView["status"] }) {
  return <Badge tone={tones[status]}>{status}</Badge>;
}

/** Beside the status: a test vector that did not pass, which never changes the status itself. */
export function TestVectorBadge({ report }: { report: unknown }) {
  const parsed = validationReportSchema.safeParse(report);
  if (!parsed.success || !parsed.data.testVector || parsed.data.testVector.ok) return null;
  return <Badge tone="amber">test vector did not pass</Badge>;
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
