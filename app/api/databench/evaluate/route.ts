import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseJsonBody, requireOrgActor } from "@/server/api/http";
import { compatEvaluate, compatEvaluateInput } from "@/server/evaluation/compat.service";
import { env } from "@/server/env";

export const dynamic = "force-dynamic";

/**
 * `POST /api/databench/evaluate` (the earlier DataBench API): `{dataset, metrics: "a,v,h,t,c,r",
 * subset?, token?}` scores a dataset Gantry holds, or else a dataset on the hub by its id. Answers at once with `status_url`; with
 * `wait: true` (and `timeout` seconds) it answers when the scores are in, as the earlier API did.
 */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const input = await parseJsonBody(request, compatEvaluateInput, 'Send {"dataset": "<repo id>", "metrics": "a,v,h,t,c,r"}');
    return Response.json(await compatEvaluate(db(), { actor, input, settings: env() }), { status: input.wait ? 200 : 202 });
  } catch (error) {
    return errorResponse(error);
  }
}
