import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, parseJsonBody, requireOrgActor } from "@/server/api/http";
import { claimInput } from "@/server/captures/captures.schemas";
import { claimSession } from "@/server/captures/trainer.service";
import { requireCaptureSession } from "@/server/captures/sessions.service";

export const dynamic = "force-dynamic";

/** `{trainer: name}` → a lease `{claimId, expiresAt, ...}`; 409 while another trainer's lease is live. */
export async function POST(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const sessionId = parseIdParam((await params).id, "capture session");
    await requireCaptureSession(db(), { actor, sessionId });
    const input = await parseJsonBody(request, claimInput, 'Send {"trainer": "a name for this trainer"}');
    return Response.json(await claimSession(db(), { actor, sessionId, input }));
  } catch (error) {
    return errorResponse(error);
  }
}
