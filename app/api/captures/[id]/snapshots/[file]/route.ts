import { db } from "@/server/db";
import { AppError, errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { SNAPSHOT_FILE } from "@/server/captures/captures.schemas";
import { serveSnapshotFile } from "@/server/captures/serve-snapshot";
import { findSnapshotFile } from "@/server/captures/trainer.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/** `<snapshot id>.spz` (what the viewer streams) or `<snapshot id>.ply`, with ETag, 304s and Range. */
export async function GET(request: Request, { params }: { params: Promise<{ id: string; file: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const { id, file } = await params;
    const sessionId = parseIdParam(id, "capture session");
    const m = SNAPSHOT_FILE.exec(file);
    if (!m) throw new AppError("NOT_FOUND", "No such snapshot file: ask for <snapshot id>.spz or <snapshot id>.ply");
    const blobs = blobStore();
    const found = await findSnapshotFile(db(), { actor, sessionId, snapshotId: m[1].toLowerCase(), format: m[2].toLowerCase() as "spz" | "ply", blobs });
    return await serveSnapshotFile({ blobs, file: found, headers: request.headers });
  } catch (error) {
    return errorResponse(error);
  }
}
