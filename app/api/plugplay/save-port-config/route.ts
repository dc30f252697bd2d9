import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseJsonBody, parseQuery, requireOrgActor } from "@/server/api/http";
import { compatAgentQuery, compatPortConfigInput, compatSavePortConfig } from "@/server/hardware/compat.service";

export const dynamic = "force-dynamic";

/** `POST /api/plugplay/save-port-config` (the earlier plug & play API): the leader's and follower's ports. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const input = await parseJsonBody(request, compatPortConfigInput, 'Send {"leader_port", "follower_port"} (absolute serial port paths, e.g. /dev/ttyACM0)');
    // The agent may be named in the query, as for the other plug & play endpoints, or in the body.
    const { agent } = parseQuery(request, compatAgentQuery, "save port config");
    return Response.json(await compatSavePortConfig(db(), { actor, input: { ...input, agent: input.agent ?? agent } }));
  } catch (error) {
    return errorResponse(error);
  }
}
