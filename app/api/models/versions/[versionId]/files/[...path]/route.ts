import { Readable } from "node:stream";
import { db } from "@/server/db";
import { errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { parseRangeHeader } from "@/server/api/byte-range";
import { openVersionFile } from "@/server/models/version-files.service";
import { env } from "@/server/env";
import { blobStore } from "@/server/storage/blobs";
import { redirectToLink } from "@/server/storage/serve-blob";

export const dynamic = "force-dynamic";

/** One file of a model version (model.onnx, or a checkpoint's files), with Range so a download resumes. */
export async function GET(request: Request, { params }: { params: Promise<{ versionId: string; path?: string[] }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const p = await params;
    const versionId = parseIdParam(p.versionId, "model version");
    const { file, read, directLink } = await openVersionFile(db(), blobStore(), { orgId: actor.orgId, versionId, filePath: (p.path ?? []).join("/") });
    const link = await directLink({ minBytes: env().S3_PRESIGN_MIN_BYTES, expiresInS: env().S3_PRESIGN_TTL_S });
    if (link) return redirectToLink(link, { "X-Content-Sha256": file.sha256 });
    const headers = new Headers({
      "Content-Type": "application/octet-stream",
      "Accept-Ranges": "bytes",
      "Cache-Control": "private, max-age=86400, immutable",
      ETag: `"${file.sha256}"`,
      "X-Content-Sha256": file.sha256,
      "Content-Disposition": `attachment; filename="${file.path.split("/").pop()!.replace(/[^A-Za-z0-9._-]/g, "_")}"`,
    });
    const range = parseRangeHeader(request.headers.get("range"), file.bytes);
    if (range && range.start < 0) {
      headers.set("Content-Range", `bytes */${file.bytes}`);
      return new Response(null, { status: 416, headers });
    }
    const { start, end } = range ?? { start: 0, end: file.bytes - 1 };
    headers.set("Content-Length", String(Math.max(0, end - start + 1)));
    if (range) headers.set("Content-Range", `bytes ${start}-${end}/${file.bytes}`);
    const stream = file.bytes === 0 ? Readable.from([]) : await read({ start, end });
    request.signal.addEventListener("abort", () => stream.destroy(), { once: true });
    return new Response(Readable.toWeb(stream) as ReadableStream, { status: range ? 206 : 200, headers });
  } catch (error) {
    return errorResponse(error);
  }
}
