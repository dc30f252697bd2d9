import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { compatStatus } from "@/server/captures/compat.service";

export const dynamic = "force-dynamic";

/** `GET /status` (with an API token) → `{frame_count, gaussian_count, progress, chunks_uploaded, training, ...}`. */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    return Response.json(await compatStatus(db(), { actor }), { headers: { "cache-control": "no-store" } });
  } catch (error) {
    return errorResponse(error);
  }
}
