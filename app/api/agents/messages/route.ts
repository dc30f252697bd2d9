import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { parseAgentMessage } from "@/server/api/agent-message";
import { recordAgentMessageForCaptures } from "@/server/captures/live-joints.service";

export const dynamic = "force-dynamic";

/** Facts, progress and results from a connected agent. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const message = await parseAgentMessage(request);
    return Response.json(await recordAgentMessageForCaptures(db(), { actor, message }));
  } catch (error) {
    return errorResponse(error);
  }
}
