import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseJsonBody, parseQuery, requireOrgActor } from "@/server/api/http";
import { completeEpisodeInput, episodeStateQuery } from "@/server/edge/edge.schemas";
import { completeEpisode, readEpisodeState } from "@/server/edge/episodes.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/** `?repoId&episodeIndex` → `{status: absent | encoding | ready | failed | deleted}`: whether to send it. */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    return Response.json(await readEpisodeState(db(), { actor, query: parseQuery(request, episodeStateQuery, "episode lookup") }));
  } catch (error) {
    return errorResponse(error);
  }
}

/** Every file of an episode has arrived: `{repoId, episodeIndex, task?, fps?, mode}` → its encoding is queued. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const input = await parseJsonBody(request, completeEpisodeInput, "The episode is not described right");
    return Response.json(await completeEpisode(db(), { actor, input, blobs: blobStore() }));
  } catch (error) {
    return errorResponse(error);
  }
}
