import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { compatTestDevice } from "@/server/fleet/compat.service";

export const dynamic = "force-dynamic";

/** `POST /deployment/devices/{id}/test` → {success, message, fingerprint}; pins the host key on first contact. */
export async function POST(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "admin");
    const deviceId = parseIdParam((await params).id, "device");
    return Response.json(await compatTestDevice(db(), { actor, deviceId }));
  } catch (error) {
    return errorResponse(error);
  }
}
