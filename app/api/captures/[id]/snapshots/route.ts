import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, parseQuery, rawBody, requireOrgActor } from "@/server/api/http";
import { listSnapshotsInput, snapshotListQuery, snapshotPushQuery } from "@/server/captures/captures.schemas";
import { listSnapshots, pushSnapshot } from "@/server/captures/trainer.service";
import { blobStore } from "@/server/storage/blobs";
import { requireCaptureSession } from "@/server/captures/sessions.service";

export const dynamic = "force-dynamic";

/** The session's snapshots, newest first: `?limit=&before=<snapshot id>`. */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const sessionId = parseIdParam((await params).id, "capture session");
    await requireCaptureSession(db(), { actor, sessionId });
    const query = parseQuery(request, snapshotListQuery, "snapshot list");
    return Response.json(await listSnapshots(db(), { actor, input: listSnapshotsInput.parse({ sessionId, ...query }) }), { headers: { "cache-control": "no-store" } });
  } catch (error) {
    return errorResponse(error);
  }
}

/**
 * A snapshot from the lease holder: `?claimId=&iteration=` (and `generation=` to have it
 * refused if the session was reset since), the PLY or SPZ file as the body → 201 the snapshot.
 */
export async function POST(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const sessionId = parseIdParam((await params).id, "capture session");
    await requireCaptureSession(db(), { actor, sessionId });
    const query = parseQuery(request, snapshotPushQuery, "snapshot upload");
    const snapshot = await pushSnapshot(db(), { actor, sessionId, ...query, upload: rawBody(request), blobs: blobStore(), signal: request.signal });
    return Response.json(snapshot, { status: 201 });
  } catch (error) {
    return errorResponse(error);
  }
}
