import { db } from "@/server/db";
import { env } from "@/server/env";
import { errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { EVENT_SEQ_MAX, lastEventId, sseResponse } from "@/server/api/sse";
import { streamAccessCheck } from "@/server/auth/request-actor";
import { realtimeHub } from "@/server/jobs/hub";
import { openJobEventBatches } from "@/server/jobs/stream";

export const dynamic = "force-dynamic";

/** A job's progress as server-sent events, resumable with Last-Event-ID (the event's seq). */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const jobId = parseIdParam((await params).id, "job");
    const controller = new AbortController();
    const events = await openJobEventBatches({
      db: db(), hub: realtimeHub(), orgId: actor.orgId, jobId, afterSeq: lastEventId(request, EVENT_SEQ_MAX) ?? 0,
      signal: controller.signal, maxBuffered: env().SSE_MAX_BUFFERED_EVENTS, ...streamAccessCheck(db(), realtimeHub(), actor),
    });
    return sseResponse(request, events, (e) => String(e.seq), controller);
  } catch (error) {
    return errorResponse(error);
  }
}
