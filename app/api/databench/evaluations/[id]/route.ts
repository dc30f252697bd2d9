import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { compatStatus } from "@/server/evaluation/compat.service";

export const dynamic = "force-dynamic";

/** `GET /api/databench/evaluations/{id}`: where a DataBench evaluation stands, and its scores once done. */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    return Response.json(await compatStatus(db(), { orgId: actor.orgId, evaluationId: parseIdParam((await params).id, "evaluation") }));
  } catch (error) {
    return errorResponse(error);
  }
}
