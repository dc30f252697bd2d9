import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, parseJsonBody, requireOrgActor } from "@/server/api/http";
import { releaseInput } from "@/server/captures/captures.schemas";
import { releaseLease } from "@/server/captures/trainer.service";
import { requireCaptureSession } from "@/server/captures/sessions.service";

export const dynamic = "force-dynamic";

/** `{claimId}` → `{released: true}`: the trainer is done; another may claim at once. */
export async function POST(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const sessionId = parseIdParam((await params).id, "capture session");
    await requireCaptureSession(db(), { actor, sessionId });
    const input = await parseJsonBody(request, releaseInput, 'Send {"claimId": ...}');
    await releaseLease(db(), { actor, sessionId, claimId: input.claimId });
    return Response.json({ released: true });
  } catch (error) {
    return errorResponse(error);
  }
}
