import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseQuery, requireOrgActor } from "@/server/api/http";
import { compatAgentQuery, compatCancelInstallation } from "@/server/hardware/compat.service";

export const dynamic = "force-dynamic";

/** `POST /api/plugplay/cancel-installation` (the earlier plug & play API): stops the running installation, its processes and all. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const { agent } = parseQuery(request, compatAgentQuery, "installation cancel");
    return Response.json(await compatCancelInstallation(db(), { actor, agentName: agent }));
  } catch (error) {
    return errorResponse(error);
  }
}
