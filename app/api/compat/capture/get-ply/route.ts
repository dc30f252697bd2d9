import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { compatGetPly } from "@/server/captures/compat.service";
import { serveSnapshotFile } from "@/server/captures/serve-snapshot";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/** `GET /get-ply` → the newest snapshot as binary PLY (404 until a trainer has pushed one). */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const blobs = blobStore();
    const file = await compatGetPly(db(), { actor, blobs });
    return await serveSnapshotFile({ blobs, file, headers: request.headers });
  } catch (error) {
    return errorResponse(error);
  }
}
