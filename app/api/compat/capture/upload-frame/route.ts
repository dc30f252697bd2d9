import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { rawBody, requireOrgActor } from "@/server/api/http";
import { compatUploadFrame } from "@/server/captures/compat.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/**
 * `POST /upload-frame` (the earlier live-capture clients): a multipart form with the image as
 * `image` (or `file`), or the raw JPEG/PNG → `{success, frame_count, chunks_uploaded}` for the
 * organisation's active session, started by the first frame when none is active.
 */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    return Response.json(await compatUploadFrame(db(), { actor, upload: rawBody(request, "capture_frame"), blobs: blobStore() }));
  } catch (error) {
    return errorResponse(error);
  }
}
