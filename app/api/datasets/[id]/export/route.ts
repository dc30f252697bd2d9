import { Readable } from "node:stream";
import { db } from "@/server/db";
import { env } from "@/server/env";
import { errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { exportDataset } from "@/server/datasets/archive.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/** The dataset in LeRobot v3.0's layout as a streamed .tar.gz. */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const datasetId = parseIdParam((await params).id, "dataset");
    const { stream, filename } = await exportDataset(db(), { orgId: actor.orgId, datasetId, settings: env(), blobs: blobStore(), signal: request.signal });
    request.signal.addEventListener("abort", () => stream.destroy(), { once: true });
    return new Response(Readable.toWeb(stream) as ReadableStream, {
      headers: { "Content-Type": "application/gzip", "Content-Disposition": `attachment; filename="${filename.replace(/[^A-Za-z0-9._-]/g, "_")}"`, "Cache-Control": "no-store" },
    });
  } catch (error) {
    return errorResponse(error);
  }
}
