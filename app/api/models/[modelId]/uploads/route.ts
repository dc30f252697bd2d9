import path from "node:path";
import { z } from "zod";
import { db } from "@/server/db";
import { env } from "@/server/env";
import { AppError, errorResponse } from "@/server/errors";
import { requireOrgActor } from "@/server/api/http";
import { uploadQuerySchema } from "@/server/models/models.schemas";
import { UploadTooLargeError } from "@/server/models/registry.service";
import { startUpload } from "@/server/models/uploads.service";
import { blobStore } from "@/server/storage/blobs";

export const dynamic = "force-dynamic";

/**
 * Starts a resumable upload: `Upload-Length: <bytes>`, query sha256, filename, dims as for a
 * one-shot upload. Answers 201 with the session; send the file with PUTs to its `url`.
 */
export async function POST(request: Request, { params }: { params: Promise<{ modelId: string }> }) {
  try {
    const actor = await requireOrgActor(request, "operator");
    const modelId = z.uuid().safeParse((await params).modelId);
    if (!modelId.success) throw new AppError("BAD_REQUEST", "The model id in the URL is not a valid id");
    const query = uploadQuerySchema.safeParse(Object.fromEntries(new URL(request.url).searchParams));
    if (!query.success) throw new AppError("BAD_REQUEST", `The upload's query is not valid: ${query.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
    const total = Number(request.headers.get("upload-length"));
    const deps = { db: db(), blobs: blobStore(), root: path.join(env().GANTRY_HOME, "uploads", "models"), maxBytes: env().MODEL_MAX_UPLOAD_BYTES };
    const status = await startUpload(deps, { actor, modelId: modelId.data, total, ...query.data });
    const url = `/api/models/${modelId.data}/uploads/${status.uploadId}`;
    return Response.json({ ...status, url }, { status: 201, headers: { location: url } });
  } catch (error) {
    if (error instanceof UploadTooLargeError) return Response.json({ error: { code: "PAYLOAD_TOO_LARGE", message: error.message } }, { status: 413 });
    return errorResponse(error);
  }
}
