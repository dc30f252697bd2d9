import fs from "node:fs";
import { Readable } from "node:stream";
import { db } from "@/server/db";
import { env } from "@/server/env";
import { AppError, errorResponse } from "@/server/errors";
import { parseIdParam, requireOrgActor } from "@/server/api/http";
import { parseRangeHeader } from "@/server/api/byte-range";
import { cameraNameSchema } from "@/server/datasets/datasets.schemas";
import { episodeVideo } from "@/server/datasets/datasets.service";
import { blobStore } from "@/server/storage/blobs";
import { directBlobLink, redirectToLink, serveBlob } from "@/server/storage/serve-blob";

export const dynamic = "force-dynamic";

const VIDEO_LINK_TTL_S = 3600;

/** An episode's camera video (MP4), with Range support so the player can seek. */
export async function GET(request: Request, { params }: { params: Promise<{ id: string; episodeId: string; camera: string }> }) {
  try {
    const actor = await requireOrgActor(request, "viewer");
    const p = await params;
    const datasetId = parseIdParam(p.id, "dataset");
    const episodeId = parseIdParam(p.episodeId, "episode");
    const camera = cameraNameSchema.safeParse(p.camera);
    if (!camera.success) throw new AppError("BAD_REQUEST", "The camera name in the URL is not valid");
    const video = await episodeVideo(db(), { orgId: actor.orgId, datasetId, episodeId, camera: camera.data, settings: env() });
    if ("sha256" in video) {
      const blobs = blobStore();
      // A large video plays straight from the bucket; a smaller one with ranged reads of it through
      // here. A player asks for more ranges of the link as it plays and seeks, so it lasts an hour.
      // The episode's record knows the size: the store is not asked for it.
      const link = await directBlobLink(blobs, video.sha256, { minBytes: env().S3_PRESIGN_MIN_BYTES, bytes: video.bytes, expiresInS: VIDEO_LINK_TTL_S, fileName: `${camera.data}.mp4`, media: "video/mp4" });
      if (link) return redirectToLink(link);
      return await serveBlob({ blobs, sha256: video.sha256, bytes: video.bytes, what: "video", contentType: "video/mp4", disposition: `inline; filename="${camera.data}.mp4"`, headers: request.headers });
    }
    const file = video.file;
    const { size, mtime } = await fs.promises.stat(file);
    const headers = new Headers({ "Content-Type": "video/mp4", "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600", "Last-Modified": mtime.toUTCString() });
    const range = parseRangeHeader(request.headers.get("range"), size);
    if (range && range.start < 0) {
      headers.set("Content-Range", `bytes */${size}`);
      return new Response(null, { status: 416, headers });
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    headers.set("Content-Length", String(end - start + 1));
    if (range) headers.set("Content-Range", `bytes ${start}-${end}/${size}`);
    const stream = fs.createReadStream(file, { start, end });
    request.signal.addEventListener("abort", () => stream.destroy(), { once: true });
    return new Response(Readable.toWeb(stream) as ReadableStream, { status: range ? 206 : 200, headers });
  } catch (error) {
    return errorResponse(error);
  }
}
