import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { findFrame } from "@/server/captures/frames.service";
import { imageContentType } from "@/server/captures/images";
import { serveBlob } from "@/server/storage/serve-blob";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/** One frame's image, as it was sent (ETag, Range, immutable caching). */
export async function GET(request: Request, { params }: { params: Promise<{ id: string; seq: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const { id, seq } = await params;
    const sessionId = parseIdParam(id, "capture session");
    const frame = await findFrame(db(), { actor, sessionId, seq });
    const ext = frame.format === "png" ? "png" : "jpg";
    return await serveBlob({ blobs: blobStore(), sha256: frame.sha256, bytes: frame.bytes, what: "frame", contentType: imageContentType[frame.format], disposition: `inline; filename="frame-${seq}.${ext}"`, headers: request.headers });
  } catch (error) {
    return errorResponse(error);
  }
}
