import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { withCountedBody } from "@/server/api/upload-bytes";
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
    // An upload may begin with its first bytes (creation-with-upload).
    return await edgeUploadServer().handle(withCountedBody(request, "edge"), actor);
  } catch (error) {
    return errorResponse(error);
  }
}
