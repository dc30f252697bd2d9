import { db } from "@/server/db";
import { env } from "@/server/env";
import { modelUploadLocks } from "@/server/db/upload-locks";
import { errorResponse } from "@/server/errors";
import { parseIdParam, parseJsonBody, parseQuery, requireOrgActor } from "@/server/api/http";
import { mediaType } from "@/server/api/cross-site";
import { startUploadBodySchema, uploadQuerySchema } from "@/server/models/models.schemas";
import { startUpload } from "@/server/models/uploads.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/**
 * Starts a resumable upload: `Upload-Length: <bytes>`, query sha256, filename, dims as for a
 * one-shot upload, and optionally a JSON body `{"testVector": …}`, checked against the model
 * when its last byte arrives. Answers 201 with the session; send the file with PUTs to its `url`.
 */
export async function POST(request: Request, { params }: { params: Promise<{ modelId: string }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const modelId = parseIdParam((await params).modelId, "model");
    const query = parseQuery(request, uploadQuerySchema, "upload");
    const total = Number(request.headers.get("upload-length"));
    const body = mediaType(request.headers) === "application/json" ? await parseJsonBody(request, startUploadBodySchema, 'Send {"testVector": …} to start an upload with a test vector') : {};
    const deps = { db: db(), blobs: blobStore(), maxBytes: env().MODEL_MAX_UPLOAD_BYTES, ...modelUploadLocks() };
    const status = await startUpload(deps, { actor, modelId, total, ...query, testVector: body.testVector });
    const url = `/api/models/${modelId}/uploads/${status.uploadId}`;
    return Response.json({ ...status, url }, { status: 201, headers: { location: url } });
  } catch (error) {
    return errorResponse(error);
  }
}
