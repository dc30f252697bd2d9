import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { compatHealth } from "@/server/captures/compat.service";

export const dynamic = "force-dynamic";

/** `GET /health` (with an API token) → `{status, trainer_ready}`. The portal's own health check is /api/health. */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    return Response.json(await compatHealth(db(), { actor }), { headers: { "cache-control": "no-store" } });
  } catch (error) {
    return errorResponse(error);
  }
}
