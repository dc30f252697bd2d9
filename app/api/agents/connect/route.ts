import { db } from "@/server/db";
import { env } from "@/server/env";
import { errorResponse } from "@/server/errors";
import { parseQuery, requireOrgActor } from "@/server/api/http";
import { sseResponse } from "@/server/api/sse";
import { streamAccessCheck } from "@/server/auth/request-actor";
import { realtimeHub } from "@/server/jobs/hub";
import { agentStreamEvents, openAgentSession } from "@/server/hardware/agent-session.service";
import { agentConnectQuery } from "@/server/hardware/hardware.schemas";

export const dynamic = "force-dynamic";

/**
 * An agent's command stream (server-sent events): `gantry-agent connect` holds it open and
 * posts its answers to /api/agents/messages. See server/hardware/agent-session.service.ts for
 * why this is a stream and not a WebSocket.
 */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const query = parseQuery(request, agentConnectQuery, "agent connection");
    const session = await openAgentSession(db(), { actor, name: query.name, version: query.version ?? null });
    const controller = new AbortController();
    await realtimeHub().ensureConnected();
    const events = agentStreamEvents(db(), { session, hub: realtimeHub(), presenceMs: env().AGENT_PRESENCE_MS, heartbeatMs: env().SSE_HEARTBEAT_MS, signal: controller.signal, ...streamAccessCheck(db(), realtimeHub(), actor) });
    let seq = 0;
    return sseResponse(request, events, () => String(++seq), controller, "agent");
  } catch (error) {
    return errorResponse(error);
  }
}
