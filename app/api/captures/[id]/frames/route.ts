import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, parseQuery, rawBody, requireOrgActor } from "@/server/api/http";
import { frameQuery, framesQuery } from "@/server/captures/captures.schemas";
import { addFrame, listFrames } from "@/server/captures/frames.service";
import { realtimeHub } from "@/server/jobs/hub";
import { blobStore } from "@/server/storage/blobs";
import { requireCaptureSession } from "@/server/captures/sessions.service";

export const dynamic = "force-dynamic";

/**
 * The frames after a cursor: `?after=<seq>&wait=<s>&limit=<n>` → `{frames: [{seq, sha256,
 * bytes, format, width, height, t, url}], cursor, lastSeq, status, generation}`. With `wait`
 * (at most 25 s) an empty answer waits for the next frame, from whichever process takes it.
 */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const sessionId = parseIdParam((await params).id, "capture session");
    await requireCaptureSession(db(), { actor, sessionId });
    const query = parseQuery(request, framesQuery, "frame list");
    return Response.json(await listFrames(db(), { actor, sessionId, ...query, hub: realtimeHub(), signal: request.signal }), { headers: { "cache-control": "no-store" } });
  } catch (error) {
    return errorResponse(error);
  }
}

/**
 * One frame: a JPEG or PNG as the raw body, or a multipart form with the file field `image`;
 * `?t=<ms since the epoch>` when it was taken (else its arrival), `&camera=<JSON>` the camera's
 * pose and intrinsics when known. Answers 201 with its number.
 */
export async function POST(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const sessionId = parseIdParam((await params).id, "capture session");
    await requireCaptureSession(db(), { actor, sessionId });
    const { t, camera } = parseQuery(request, frameQuery, "frame upload");
    return Response.json(await addFrame(db(), { actor, sessionId, upload: rawBody(request, "capture_frame"), t, camera, blobs: blobStore() }), { status: 201 });
  } catch (error) {
    return errorResponse(error);
  }
}
