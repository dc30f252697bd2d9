import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseQuery, requireOrgActor } from "@/server/api/http";
import { compatAgentQuery, compatInstallationStatus } from "@/server/hardware/compat.service";

export const dynamic = "force-dynamic";

/** `GET /api/plugplay/installation-status` (the earlier plug & play API): the latest LeRobot installation on the agent. */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const { agent } = parseQuery(request, compatAgentQuery, "installation status");
    return Response.json(await compatInstallationStatus(db(), { actor, agentName: agent }));
  } catch (error) {
    return errorResponse(error);
  }
}
