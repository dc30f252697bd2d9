import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseJsonBody, requireOrgActor } from "@/server/api/http";
import { compatJointAnglesInput } from "@/server/captures/captures.schemas";
import { compatUpdateJointAngles } from "@/server/captures/compat.service";

export const dynamic = "force-dynamic";

/** `POST /update-joint-angles` `{"joint_angles": [6 radians]}` → `{success, joint_angles}`, kept for the active session. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const input = await parseJsonBody(request, compatJointAnglesInput, 'Send {"joint_angles": [six angles in radians]}');
    return Response.json(await compatUpdateJointAngles(db(), { actor, input }));
  } catch (error) {
    return errorResponse(error);
  }
}
