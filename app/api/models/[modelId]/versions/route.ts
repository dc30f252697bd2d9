import { Readable } from "node:stream";
import { db } from "@/server/db";
import { env } from "@/server/env";
import { AppError, errorResponse } from "@/server/errors";
import { parseIdParam, parseQuery, requireOrgActor } from "@/server/api/http";
import { countedBody } from "@/server/api/upload-bytes";
import { uploadQuerySchema } from "@/server/models/models.schemas";
import { addVersionFromUpload, UploadTooLargeError } from "@/server/models/registry.service";
import { parseTestVectorLength, splitTestVector } from "@/server/models/uploads.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/**
 * Adds a version by upload: the ONNX file is the raw request body, streamed to the blob store.
 * Query: sha256 (checked on arrival), filename, dims (JSON). With a test vector, the body starts
 * with the vector's JSON and `Test-Vector-Length: <its bytes>` says where the model begins; a
 * vector that does not fit the model is refused (400) and nothing is added. Answers 201 with
 * the version.
 */
export async function POST(request: Request, { params }: { params: Promise<{ modelId: string }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const modelId = parseIdParam((await params).modelId, "model");
    const query = parseQuery(request, uploadQuerySchema, "upload");
    const vectorLength = parseTestVectorLength(request.headers.get("test-vector-length"));
    const maxBytes = env().MODEL_MAX_UPLOAD_BYTES;
    if (Number(request.headers.get("content-length")) - (vectorLength ?? 0) > maxBytes) throw new UploadTooLargeError(maxBytes);
    if (!request.body) throw new AppError("BAD_REQUEST", "Send the ONNX file as the request body");
    const body = Readable.fromWeb(countedBody(request.body, "model") as never);
    const { testVector, model } = vectorLength === null ? { testVector: undefined, model: body } : await splitTestVector(body, vectorLength);
    const version = await addVersionFromUpload(db(), { actor, modelId, body: model, blobs: blobStore(), maxBytes, ...query, testVector, signal: request.signal });
    return Response.json(version, { status: 201 });
  } catch (error) {
    return errorResponse(error);
  }
}
