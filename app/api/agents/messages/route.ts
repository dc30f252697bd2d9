import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { parseAgentMessage } from "@/server/api/agent-message";
import { recordAgentMessage } from "@/server/hardware/agent-session.service";
import { recordLiveJointSamples } from "@/server/captures/live-joints.service";

export const dynamic = "force-dynamic";

/** Facts, progress and results from a connected agent. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const message = await parseAgentMessage(request);
    const reply = await recordAgentMessage(db(), { actor, message });
    // An arm a capture follows: its readings are also the capture's joint states.
    if (message.type === "samples" && reply.accepted) await recordLiveJointSamples(db(), { actor, commandId: message.commandId, samples: message.samples });
    return Response.json(reply);
  } catch (error) {
    return errorResponse(error);
  }
}
