import { AppError, errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { withCountedBody } from "@/server/api/upload-bytes";
import { edgeUploadServer } from "@/server/edge/upload-server";

export const dynamic = "force-dynamic";

type Params = { params: Promise<{ uploadId: string }> };

/** tus for one upload: HEAD (how much arrived), PATCH (more bytes), DELETE (abandon). */
async function handle(request: Request, { params }: Params): Promise<Response> {
  try {
    const actor = await requireOrgActor(request, "operator");
    const server = edgeUploadServer();
    if (!(await server.isOwnUpload((await params).uploadId, actor))) throw new AppError("NOT_FOUND", "No such upload in this organisation; start the upload again");
    return await server.handle(withCountedBody(request, "edge"), actor);
  } catch (error) {
    // HEAD answers carry no body; the status says it.
    return errorResponse(error);
  }
}

export const HEAD = handle;
export const PATCH = handle;
export const DELETE = handle;
