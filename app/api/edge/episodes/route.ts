import { db } from "@/server/db";
import { AppError, errorResponse } from "@/server/errors";
import { parseQuery, requireOrgActor } from "@/server/api/http";
import { completeEpisodeInput, episodeStateQuery } from "@/server/edge/edge.schemas";
import { completeEpisode, readEpisodeState } from "@/server/edge/episodes.service";

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
    const parsed = completeEpisodeInput.safeParse(await request.json().catch(() => null));
    if (!parsed.success) throw new AppError("BAD_REQUEST", `The episode is not described right: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
    return Response.json(await completeEpisode(db(), { actor, input: parsed.data }));
  } catch (error) {
    return errorResponse(error);
  }
}
