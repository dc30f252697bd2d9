import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { sseResponse } from "@/server/api/sse";
import { realtimeHub } from "@/server/jobs/hub";
import { streamAccessCheck } from "@/server/auth/request-actor";
import { openJointSampleStream } from "@/server/hardware/joint-stream";

export const dynamic = "force-dynamic";

/** A running command's joint readings (live joints, range recording) as server-sent events, until it ends. */
export async function GET(request: Request, { params }: { params: Promise<{ commandId: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const commandId = parseIdParam((await params).commandId, "command");
    const controller = new AbortController();
    await realtimeHub().ensureConnected();
    // Access is asked again while it is open: a removed member or a revoked token stops it.
    const events = await openJointSampleStream(db(), { actor, commandId, hub: realtimeHub(), signal: controller.signal, ...streamAccessCheck(db(), realtimeHub(), actor) });
    return sseResponse(request, events, (e) => String(e.seq), controller, "joints");
  } catch (error) {
    return errorResponse(error);
  }
}
