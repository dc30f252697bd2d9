import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { compatReset } from "@/server/captures/compat.service";

export const dynamic = "force-dynamic";

/** `POST /reset` → `{success, message}`: the active session's frames and snapshots are cleared. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    return Response.json(await compatReset(db(), { actor }));
  } catch (error) {
    return errorResponse(error);
  }
}
