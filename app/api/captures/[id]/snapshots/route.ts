import { z } from "zod";
import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, parseQuery, rawBody, requireOrgActor } from "@/server/api/http";
import { listSnapshotsInput, snapshotQuery } from "@/server/captures/captures.schemas";
import { listSnapshots, pushSnapshot } from "@/server/captures/trainer.service";
import { blobStore } from "@/server/storage/blobs";
import { requireCaptureSession } from "@/server/captures/sessions.service";

export const dynamic = "force-dynamic";

const listQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(100), before: z.uuid().optional() });
const pushQuery = snapshotQuery.extend({ generation: z.coerce.number().int().min(0).optional() });

/** The session's snapshots, newest first: `?limit=&before=<snapshot id>`. */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const sessionId = parseIdParam((await params).id, "capture session");
    await requireCaptureSession(db(), { actor, sessionId });
    const query = parseQuery(request, listQuery, "snapshot list");
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
    const query = parseQuery(request, pushQuery, "snapshot upload");
    const snapshot = await pushSnapshot(db(), { actor, sessionId, ...query, upload: rawBody(request), blobs: blobStore(), signal: request.signal });
    return Response.json(snapshot, { status: 201 });
  } catch (error) {
    return errorResponse(error);
  }
}
