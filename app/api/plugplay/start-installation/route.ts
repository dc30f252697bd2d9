import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseJsonBody, requireOrgActor } from "@/server/api/http";
import { compatStartInstallation, compatStartInstallationInput } from "@/server/hardware/compat.service";

export const dynamic = "force-dynamic";

/** `POST /api/plugplay/start-installation` (the earlier plug & play API): installs LeRobot on the agent's computer. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const input = await parseJsonBody(request, compatStartInstallationInput, 'Send {"installation_path": "~/lerobot", "selected_robot": "so101"}');
    return Response.json(await compatStartInstallation(db(), { actor, input }));
  } catch (error) {
    return errorResponse(error);
  }
}
