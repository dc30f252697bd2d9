import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseJsonBody, parseQuery, requireOrgActor } from "@/server/api/http";
import { compatAgentQuery, compatStartInstallation, compatStartInstallationInput } from "@/server/hardware/compat.service";

export const dynamic = "force-dynamic";

/** `POST /api/plugplay/start-installation` (the earlier plug & play API): installs LeRobot on the agent's computer. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const input = await parseJsonBody(request, compatStartInstallationInput, 'Send {"installation_path": "~/lerobot", "selected_robot": "so101"}');
    // The agent may be named in the query, as for the other plug & play endpoints, or in the body.
    const { agent } = parseQuery(request, compatAgentQuery, "start installation");
    return Response.json(await compatStartInstallation(db(), { actor, input: { ...input, agent: input.agent ?? agent } }));
  } catch (error) {
    return errorResponse(error);
  }
}
