import { db } from "@/server/db";
import { AppError, errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { compatDeploy, compatDeployInput } from "@/server/fleet/compat.service";

export const dynamic = "force-dynamic";

/** `POST /deployment/deploy` {model_path | model_version_id, device_id, parameters} → {message, task_id}. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const parsed = compatDeployInput.safeParse(await request.json().catch(() => null));
    if (!parsed.success) throw new AppError("BAD_REQUEST", `Send {"model_version_id" or "model_path", "device_id"}: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
    return Response.json(await compatDeploy(db(), { actor, input: parsed.data }));
  } catch (error) {
    return errorResponse(error);
  }
}
