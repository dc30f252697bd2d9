import fs from "node:fs/promises";
import { Readable } from "node:stream";
import { z } from "zod";
import { db } from "@/server/db";
import { env } from "@/server/env";
import { AppError, errorResponse } from "@/server/errors";
import { parseQuery, requireOrgActor } from "@/server/api/http";
import { ArchiveTooLargeError, unpackUpload } from "@/server/datasets/archive.service";
import { repoIdSchema } from "@/server/datasets/datasets.schemas";
import { findDatasetRoot, startImport } from "@/server/datasets/import.service";

export const dynamic = "force-dynamic";

const querySchema = z.object({ repoId: repoIdSchema, filename: z.string().max(300).optional() });

/**
 * Imports a LeRobot v2.1 or v3.0 dataset sent as a .tar.gz or .zip (the raw request body).
 * Query: repoId (the new dataset's name). Answers 201 with { datasetId, jobId }.
 */
export async function POST(request: Request) {
  let staging: string | null = null;
  try {
    const actor = await requireOrgActor(request, "operator");
    const query = parseQuery(request, querySchema, "import");
    const maxBytes = env().DATASET_MAX_IMPORT_BYTES;
    if (Number(request.headers.get("content-length")) > maxBytes) throw new ArchiveTooLargeError(maxBytes);
    if (!request.body) throw new AppError("BAD_REQUEST", "Send the archive as the request body");
    staging = await unpackUpload(Readable.fromWeb(request.body as never), env(), maxBytes);
    await findDatasetRoot(`${staging}/content`);
    const started = await startImport(db(), { actor, repoId: query.repoId, sourceDir: `${staging}/content`, removeSource: true, from: query.filename ?? "an uploaded archive" });
    staging = null;
    return Response.json(started, { status: 201 });
  } catch (error) {
    if (staging) await fs.rm(staging, { recursive: true, force: true });
    return errorResponse(error);
  }
}
