import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { findChunk } from "@/server/captures/frames.service";
import { serveBlob } from "@/server/storage/serve-blob";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/** One chunk manifest (JSON, format gantry-capture-chunk/1): its frames, their sha256s, times and nearest joint states. */
export async function GET(request: Request, { params }: { params: Promise<{ id: string; index: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const { id, index } = await params;
    const sessionId = parseIdParam(id, "capture session");
    const chunk = await findChunk(db(), { actor, sessionId, index });
    return await serveBlob({ blobs: blobStore(), sha256: chunk.sha256, what: "chunk", contentType: "application/json", disposition: `inline; filename="chunk-${index}.json"`, headers: request.headers });
  } catch (error) {
    return errorResponse(error);
  }
}
