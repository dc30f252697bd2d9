import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { compatStopTraining } from "@/server/captures/compat.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/** `POST /stop-training` → `{success, chunks: [...], complete}`: the active session stops, its last frames chunked. */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    return Response.json(await compatStopTraining(db(), { actor, blobs: blobStore() }));
  } catch (error) {
    return errorResponse(error);
  }
}
