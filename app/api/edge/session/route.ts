import { db } from "@/server/db";
import { env } from "@/server/env";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { describeAgentSession } from "@/server/edge/episodes.service";

export const dynamic = "force-dynamic";

/** Who an API token acts as, and whether it may upload: what `gantry-agent login` checks. */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    return Response.json(await describeAgentSession(db(), { actor, maxUploadBytes: env().EDGE_MAX_UPLOAD_BYTES }));
  } catch (error) {
    return errorResponse(error);
  }
}
