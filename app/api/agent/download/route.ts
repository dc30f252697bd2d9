import { Readable } from "node:stream";
import { errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { openAgentDownload } from "@/server/edge/agent-download.service";

export const dynamic = "force-dynamic";

/** The edge agent, one JavaScript file for Node 20+, as `npm run build:agent` built it. */
export async function GET(request: Request) {
  try {
    await requireOrgActor(request, "viewer");
    const { stream, bytes, sha256, filename } = await openAgentDownload();
    request.signal.addEventListener("abort", () => stream.destroy(), { once: true });
    return new Response(Readable.toWeb(stream) as ReadableStream, {
      headers: {
        "Content-Type": "text/javascript; charset=utf-8",
        "Content-Disposition": `attachment; filename="${filename}"`,
        "Content-Length": String(bytes),
        "X-Checksum-SHA256": sha256,
        "Cache-Control": "no-store",
      },
    });
  } catch (error) {
    return errorResponse(error);
  }
}
