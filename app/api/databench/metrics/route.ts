import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { compatMetrics } from "@/server/evaluation/compat.service";

export const dynamic = "force-dynamic";

/** `GET /api/databench/metrics` (the earlier DataBench API): the metric codes and names. */
export async function GET(request: Request) {
  try {
    await requireOrgActor(request, "viewer");
    return Response.json(compatMetrics());
  } catch (error) {
    return errorResponse(error);
  }
}
