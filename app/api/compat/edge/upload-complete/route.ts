import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseJsonBody, requireOrgActor } from "@/server/api/http";
import { compatUploadCompleteInput } from "@/server/edge/edge.schemas";
import { completeCompatUpload } from "@/server/edge/episodes.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/**
 * `POST /edge/upload-complete` (the earlier edge clients): the frames of `{repo_id,
 * episode_index}` were rsync'ed into EDGE_UPLOAD_DIR/<org id>/<repo_id>/; answers
 * `{"status": "encoding", "message": ...}`.
 */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const input = await parseJsonBody(request, compatUploadCompleteInput, 'Send {"repo_id": ..., "episode_index": ...}');
    return Response.json(await completeCompatUpload(db(), { actor, input, blobs: blobStore() }));
  } catch (error) {
    return errorResponse(error);
  }
}
