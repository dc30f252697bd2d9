import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { edgeUploadServer } from "@/server/edge/upload-server";

export const dynamic = "force-dynamic";

/**
 * Starts a resumable (tus 1.0) upload of one episode's archive: `Upload-Length` and
 * `Upload-Metadata` (format, repoId, episodeIndex, mode, manifestSha256). Answers 201 with its
 * `Location`; 507 when the portal's disk is too full to take it.
 */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    return await edgeUploadServer().handle(request, actor);
  } catch (error) {
    return errorResponse(error);
  }
}
