import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, parseQuery, requireOrgActor } from "@/server/api/http";
import { lastEventId, sseResponse } from "@/server/api/sse";
import { streamAccessCheck } from "@/server/auth/request-actor";
import { realtimeHub } from "@/server/jobs/hub";
import { openRunLogStream } from "@/server/training/log-stream";
import { runLogStreamQuery } from "@/server/training/training.schemas";

export const dynamic = "force-dynamic";

/**
 * A training run's log as server-sent events (`event: log`, data `{attempt, offset, text}`),
 * live as the worker stores each piece; resumable with Last-Event-ID (the piece's byte
 * offset) or `?after=`. Ends (`event: end`) once the run has ended and all of its log was sent.
 */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const runId = parseIdParam((await params).id, "training run");
    const q = parseQuery(request, runLogStreamQuery, "log stream");
    const controller = new AbortController();
    const pieces = await openRunLogStream({ db: db(), hub: realtimeHub(), orgId: actor.orgId, runId, attempt: q.attempt, after: lastEventId(request) ?? q.after ?? -1, signal: controller.signal, ...streamAccessCheck(db(), realtimeHub(), actor) });
    return sseResponse(request, pieces, (p) => String(p.offset), controller, "log");
  } catch (error) {
    return errorResponse(error);
  }
}
