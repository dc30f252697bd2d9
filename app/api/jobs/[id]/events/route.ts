import { z } from "zod";
import { db } from "@/server/db";
import { env } from "@/server/env";
import { AppError, errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { lastEventId, sseResponse } from "@/server/api/sse";
import { realtimeHub } from "@/server/jobs/hub";
import { streamJobEvents } from "@/server/jobs/stream";

export const dynamic = "force-dynamic";

/** A job's progress as server-sent events, resumable with Last-Event-ID (the event's seq). */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const jobId = z.uuid().safeParse((await params).id);
    if (!jobId.success) throw new AppError("BAD_REQUEST", "The job id in the URL is not a valid id");
    const job = await db().job.findFirst({ where: { id: jobId.data, orgId: actor.orgId }, select: { id: true } });
    if (!job) throw new AppError("NOT_FOUND", "No such job in this organisation");
    const after = Number(lastEventId(request) ?? 0);
    return sseResponse(
      request,
      (signal) => streamJobEvents({ db: db(), hub: realtimeHub(), orgId: actor.orgId, jobId: jobId.data, afterSeq: after, signal, maxBuffered: env().SSE_MAX_BUFFERED_EVENTS }),
      (e) => String(e.seq),
    );
  } catch (error) {
    return errorResponse(error);
  }
}
