import { db } from "@/server/db";
import { AppError, errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { compatUploadCompleteInput } from "@/server/edge/edge.schemas";
import { completeCompatUpload } from "@/server/edge/episodes.service";

export const dynamic = "force-dynamic";

/**
 * `POST /edge/upload-complete` (the earlier edge clients): the frames of `{repo_id,
 * episode_index}` were rsync'ed into EDGE_UPLOAD_DIR/<org id>/<repo_id>/; answers
 * `{"status": "encoding", "message": ...}`.
 */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const parsed = compatUploadCompleteInput.safeParse(await request.json().catch(() => null));
    if (!parsed.success) throw new AppError("BAD_REQUEST", `Send {"repo_id": ..., "episode_index": ...}: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
    return Response.json(await completeCompatUpload(db(), { actor, input: parsed.data }));
  } catch (error) {
    return errorResponse(error);
  }
}
