import { Readable } from "node:stream";
import { db } from "@/server/db";
import { env } from "@/server/env";
import { modelUploadLocks } from "@/server/db/upload-locks";
import { errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { countedBody } from "@/server/api/upload-bytes";
import { cancelUpload, getUploadStatus, putUploadChunk } from "@/server/models/uploads.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

type Params = { params: Promise<{ modelId: string; uploadId: string }> };

const deps = () => ({ db: db(), blobs: blobStore(), maxBytes: env().MODEL_MAX_UPLOAD_BYTES, ...modelUploadLocks() });

async function ids(params: Params["params"]) {
  const p = await params;
  return { modelId: parseIdParam(p.modelId, "model"), uploadId: p.uploadId };
}

/** How much has arrived: resume by sending from `received`. */
export async function GET(request: Request, { params }: Params) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const status = await getUploadStatus(deps(), { actor, ...(await ids(params)) });
    return Response.json(status, { headers: rangeHeader(status.received) });
  } catch (error) {
    return errorResponse(error);
  }
}

/**
 * One piece: `Content-Range: bytes <first>-<last>/<total>`, the bytes as the body. Answers 200
 * with what has arrived, or 201 with the new version after the last piece.
 */
export async function PUT(request: Request, { params }: Params) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const where = await ids(params);
    const body = request.body ? Readable.fromWeb(countedBody(request.body, "model") as never) : null;
    const result = await putUploadChunk(deps(), { actor, ...where, contentRange: request.headers.get("content-range"), body, signal: request.signal });
    if (result.version) return Response.json({ ...result.status, ...result.version }, { status: 201 });
    return Response.json(result.status, { headers: rangeHeader(result.status.received) });
  } catch (error) {
    return errorResponse(error);
  }
}

/** Abandons the upload and frees its space. */
export async function DELETE(request: Request, { params }: Params) {
  try {
    const actor = await requireOrgActor(request, "operator");
    await cancelUpload(deps(), { actor, ...(await ids(params)) });
    return new Response(null, { status: 204 });
  } catch (error) {
    return errorResponse(error);
  }
}

const rangeHeader = (received: number): Record<string, string> => (received > 0 ? { range: `bytes=0-${received - 1}` } : {});
