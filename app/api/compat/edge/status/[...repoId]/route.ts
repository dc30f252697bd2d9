import { db } from "@/server/db";
import { AppError, errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { edgeRepoIdSchema } from "@/server/edge/edge.schemas";
import { readCompatStatus } from "@/server/edge/episodes.service";

export const dynamic = "force-dynamic";

/**
 * `GET /edge/status/{repo_id}` (the earlier edge clients; repo_id may be owner/name):
 * `{status, progress, message, episodes}`. Unlike the earlier service, never a credential.
 */
export async function GET(request: Request, { params }: { params: Promise<{ repoId?: string[] }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const repoId = edgeRepoIdSchema.safeParse(((await params).repoId ?? []).join("/"));
    // A name that cannot be a dataset is one this organisation does not have.
    if (!repoId.success) throw new AppError("NOT_FOUND", "No such dataset in this organisation: the repo id in the URL is not valid");
    return Response.json(await readCompatStatus(db(), { actor, repoId: repoId.data }));
  } catch (error) {
    return errorResponse(error);
  }
}
