import { db } from "@/server/db";
import { AppError, errorResponse } from "@/server/errors";
import { parseJsonBody, requireOrgActor } from "@/server/api/http";
import { edgeRepoIdSchema } from "@/server/edge/edge.schemas";
import { compatTrainInput, startCompatTraining } from "@/server/training/compat.service";

export const dynamic = "force-dynamic";

/**
 * `POST /edge/train/{repo_id}` (the earlier edge clients): starts a training run of the dataset
 * on the organisation's default target. Body (optional): `{policy_type, steps, save_freq,
 * log_freq}`. Answers `{status: "TRAINING", transaction_id, message}`; follow it with
 * `GET /edge/status/{repo_id}`.
 */
export async function POST(request: Request, { params }: { params: Promise<{ repoId?: string[] }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const repoId = edgeRepoIdSchema.safeParse(((await params).repoId ?? []).join("/"));
    if (!repoId.success) throw new AppError("NOT_FOUND", "No such dataset in this organisation: the repo id in the URL is not valid");
    // An empty body takes the defaults (policy act, 100,000 steps); any other is the settings, whatever its Content-Type says.
    const input = await parseJsonBody(request, compatTrainInput, 'Send {"policy_type": "act", "steps": 100000} or no body', { whenEmpty: {} });
    return Response.json(await startCompatTraining(db(), { actor, repoId: repoId.data, input }));
  } catch (error) {
    return errorResponse(error);
  }
}
