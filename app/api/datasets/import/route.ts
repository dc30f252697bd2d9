import { Readable } from "node:stream";
import { db } from "@/server/db";
import { env } from "@/server/env";
import { errorResponse } from "@/server/errors";
import { parseQuery, requireOrgActor } from "@/server/api/http";
import { archiveImportQuery } from "@/server/datasets/datasets.schemas";
import { importArchiveUpload } from "@/server/datasets/upload-import.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/**
 * Imports a LeRobot v2.1 or v3.0 dataset sent as a .tar.gz or .zip (the raw request body).
 * Query: repoId (the new dataset's name), and optionally action, state and cameras (feature
 * names). Answers 201 with { datasetId, jobId }, or 202 with { staged } when the dataset names
 * its features otherwise than LeRobot does and no mapping was given: confirm it with
 * the datasetImports.importStaged procedure. A repo id already taken is refused before the body is read.
 */
export async function POST(request: Request) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const query = parseQuery(request, archiveImportQuery, "import");
    const mapping = query.action && query.state ? { action: query.action, state: query.state, ...(query.cameras !== undefined ? { cameras: query.cameras.split(",").map((c) => c.trim()).filter(Boolean) } : {}) } : undefined;
    const declared = request.headers.get("content-length");
    const outcome = await importArchiveUpload(db(), {
      actor,
      body: request.body ? Readable.fromWeb(request.body as never) : null,
      declaredBytes: declared === null ? null : Number(declared),
      repoId: query.repoId,
      from: query.filename ?? "an uploaded archive",
      mapping,
      settings: env(),
      blobs: blobStore(),
    });
    if (outcome.kind === "staged") {
      const { kind: _kind, ...staged } = outcome;
      return Response.json({ staged }, { status: 202 });
    }
    return Response.json({ datasetId: outcome.datasetId, jobId: outcome.jobId }, { status: 201 });
  } catch (error) {
    return errorResponse(error);
  }
}
