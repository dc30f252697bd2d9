import { db } from "@/server/db";
import { env } from "@/server/env";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { lastEventId, sseResponse } from "@/server/api/sse";
import { realtimeHub } from "@/server/jobs/hub";
import { streamOrgEvents } from "@/server/jobs/stream";
import { latestOrgEventId } from "@/server/jobs/jobs.service";

export const dynamic = "force-dynamic";

/** Every job event of the caller's organisation as server-sent events, resumable by event id. */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const resumeFrom = lastEventId(request);
    const afterId = resumeFrom ? BigInt(resumeFrom) : await latestOrgEventId(db(), actor.orgId);
    return sseResponse(
      request,
      (signal) => streamOrgEvents({ db: db(), hub: realtimeHub(), orgId: actor.orgId, afterId, signal, maxBuffered: env().SSE_MAX_BUFFERED_EVENTS }),
      (e) => e.id,
    );
  } catch (error) {
    return errorResponse(error);
  }
}
