import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { checkpointPullManifest } from "@/server/training/compat.service";

export const dynamic = "force-dynamic";

/**
 * `GET /api/edge/models/{repo_id|run id}` (for `gantry-agent pull-model`): the checkpoint to
 * download — its run, its files with sha256 and size, and where to fetch each.
 */
export async function GET(request: Request, { params }: { params: Promise<{ ref?: string[] }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    return Response.json(await checkpointPullManifest(db(), { orgId: actor.orgId, ref: ((await params).ref ?? []).join("/") }));
  } catch (error) {
    return errorResponse(error);
  }
}
