import { Badge, type Tone } from "@/components/ui/badge";
import type { EndpointView } from "@/server/serving/endpoints.schemas";

const tones: Record<EndpointView["status"], Tone> = { deploying: "blue", ready: "green", failed: "red", stopped: "neutral" };

export function EndpointStatus({ status }: { status: EndpointView["status"] }) {
  return <Badge tone={tones[status]}>{status}</Badge>;
}
