import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseJsonBody, requireOrgActor } from "@/server/api/http";
import { compatDeploy, compatDeployInput } from "@/server/fleet/compat.service";

export const dynamic = "force-dynamic";

/** `POST /deployment/deploy` {model_path | model_version_id, device_id, parameters} → {message, task_id}. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const input = await parseJsonBody(request, compatDeployInput, 'Send {"model_version_id" or "model_path", "device_id"}');
    return Response.json(await compatDeploy(db(), { actor, input }));
  } catch (error) {
    return errorResponse(error);
  }
}
