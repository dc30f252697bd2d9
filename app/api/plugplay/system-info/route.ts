import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseQuery, requireOrgActor } from "@/server/api/http";
import { compatAgentQuery, compatSystemInfo } from "@/server/hardware/compat.service";

export const dynamic = "force-dynamic";

/** `GET /api/plugplay/system-info` (the earlier plug & play API): the agent's host, not the portal's. */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const { agent } = parseQuery(request, compatAgentQuery, "system info");
    return Response.json(await compatSystemInfo(db(), { actor, agentName: agent }));
  } catch (error) {
    return errorResponse(error);
  }
}
