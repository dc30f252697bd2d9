import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, parseJsonBody, requireOrgActor } from "@/server/api/http";
import { postJointsInput } from "@/server/captures/captures.schemas";
import { getLatestJointState, postJointState } from "@/server/captures/joints.service";
import { requireCaptureSession } from "@/server/captures/sessions.service";

export const dynamic = "force-dynamic";

/** The latest posted pose: `{t, angles}`, or null before any. */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const sessionId = parseIdParam((await params).id, "capture session");
    return Response.json(await getLatestJointState(db(), { actor, sessionId }), { headers: { "cache-control": "no-store" } });
  } catch (error) {
    return errorResponse(error);
  }
}

/** `{joint_angles: [6 radians], t?: ms since the epoch}` → 201 `{t, angles}`. */
export async function POST(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const sessionId = parseIdParam((await params).id, "capture session");
    await requireCaptureSession(db(), { actor, sessionId });
    const input = await parseJsonBody(request, postJointsInput, 'Send {"joint_angles": [six angles in radians], "t": milliseconds since the epoch (optional)}');
    return Response.json(await postJointState(db(), { actor, sessionId, input }), { status: 201 });
  } catch (error) {
    return errorResponse(error);
  }
}
