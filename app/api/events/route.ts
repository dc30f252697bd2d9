import { db } from "@/server/db";
import { env } from "@/server/env";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { EVENT_SEQ_MAX, lastEventId, sseResponse } from "@/server/api/sse";
import { streamAccessCheck } from "@/server/auth/request-actor";
import { realtimeHub } from "@/server/jobs/hub";
import { openOrgEventBatches } from "@/server/jobs/stream";

export const dynamic = "force-dynamic";

/**
 * Every job event of the caller's organisation as server-sent events. Event ids number the
 * organisation's events in commit order; Last-Event-ID resumes after one without a gap.
 */
export async function GET(request: Request) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const controller = new AbortController();
    const events = await openOrgEventBatches({
      db: db(), hub: realtimeHub(), orgId: actor.orgId, afterOrgSeq: lastEventId(request, EVENT_SEQ_MAX),
      signal: controller.signal, maxBuffered: env().SSE_MAX_BUFFERED_EVENTS, ...streamAccessCheck(db(), realtimeHub(), actor),
    });
    return sseResponse(request, events, (e) => String(e.orgSeq), controller);
  } catch (error) {
    return errorResponse(error);
  }
}
