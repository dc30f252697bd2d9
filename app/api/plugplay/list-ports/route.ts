import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseQuery, requireOrgActor } from "@/server/api/http";
import { compatAgentQuery, compatListPorts } from "@/server/hardware/compat.service";

export const dynamic = "force-dynamic";

/** `GET /api/plugplay/list-ports` (the earlier plug & play API): the serial ports of the computer the arm is plugged into. */
export async function GET(request: Request) {
  try {
    // Listing ports is a command to the agent: operators and above send commands.
    const actor = await requireOrgActor(request, "operator");
    const { agent } = parseQuery(request, compatAgentQuery, "port list");
    return Response.json(await compatListPorts(db(), { actor, agentName: agent }));
  } catch (error) {
    return errorResponse(error);
  }
}
