import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseJsonBody, requireOrgActor } from "@/server/api/http";
import { compatAddDevice, compatDeviceInput, compatListDevices } from "@/server/fleet/compat.service";

export const dynamic = "force-dynamic";

/** `GET /deployment/devices`: the organisation's devices, never a credential. */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    return Response.json(await compatListDevices(db(), { orgId: actor.orgId }));
  } catch (error) {
    return errorResponse(error);
  }
}

/** `POST /deployment/devices`: adds a device; the password is stored encrypted and not echoed. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "admin");
    const input = await parseJsonBody(request, compatDeviceInput, 'Send {"name", "host", "port", "username", "password" or "private_key"}');
    return Response.json(await compatAddDevice(db(), { actor, input }), { status: 201 });
  } catch (error) {
    return errorResponse(error);
  }
}
