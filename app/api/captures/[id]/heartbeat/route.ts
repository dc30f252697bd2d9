import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, parseJsonBody, requireOrgActor } from "@/server/api/http";
import { heartbeatInput } from "@/server/captures/captures.schemas";
import { heartbeat } from "@/server/captures/trainer.service";
import { requireCaptureSession } from "@/server/captures/sessions.service";

export const dynamic = "force-dynamic";

/** `{claimId, iteration, gaussians, progress?}` → the lease renewed, with the session's status and generation; 409 once the lease is lost. */
export async function POST(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const sessionId = parseIdParam((await params).id, "capture session");
    await requireCaptureSession(db(), { actor, sessionId });
    const input = await parseJsonBody(request, heartbeatInput, 'Send {"claimId": ..., "iteration": n, "gaussians": n, "progress": 0..1 (optional)}');
    return Response.json(await heartbeat(db(), { actor, sessionId, input }));
  } catch (error) {
    return errorResponse(error);
  }
}
