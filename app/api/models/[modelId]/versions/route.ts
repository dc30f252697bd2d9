import { Readable } from "node:stream";
import { db } from "@/server/db";
import { env } from "@/server/env";
import { AppError, errorResponse } from "@/server/errors";
import { parseIdParam, parseQuery, requireOrgActor } from "@/server/api/http";
import { uploadQuerySchema } from "@/server/models/models.schemas";
import { addVersionFromUpload, UploadTooLargeError } from "@/server/models/registry.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/**
 * Adds a version by upload: the ONNX file is the raw request body, streamed to the blob store.
 * Query: sha256 (checked on arrival), filename, dims (JSON). Answers 201 with the version.
 */
export async function POST(request: Request, { params }: { params: Promise<{ modelId: string }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const modelId = parseIdParam((await params).modelId, "model");
    const query = parseQuery(request, uploadQuerySchema, "upload");
    const maxBytes = env().MODEL_MAX_UPLOAD_BYTES;
    if (Number(request.headers.get("content-length")) > maxBytes) throw new UploadTooLargeError(maxBytes);
    if (!request.body) throw new AppError("BAD_REQUEST", "Send the ONNX file as the request body");
    const version = await addVersionFromUpload(db(), {
      actor,
      modelId,
      body: Readable.fromWeb(request.body as never),
      blobs: blobStore(),
      maxBytes,
      ...query,
      signal: request.signal,
    });
    return Response.json(version, { status: 201 });
  } catch (error) {
    return errorResponse(error);
  }
}
