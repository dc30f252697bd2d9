import { Readable } from "node:stream";
import { parseRangeHeader } from "../api/byte-range";
import { AppError } from "../errors";
import { parseSha256, type BlobStore, type PresignOptions } from "./blob-store";

// Blobs are named by their sha256, so the name is a strong ETag and the bytes never change:
// a viewer may cache them for good, and seek a video or resume a large scene with Range
// (from the bucket, a ranged read of the object).

/**
 * A link straight to the store for a blob of at least `minBytes`, so its bytes need not pass
 * through the portal (ranges too); null from a store that gives no links, or for a smaller blob.
 * `bytes`, when the caller's record knows the size, spares asking the store.
 */
export async function directBlobLink(blobs: BlobStore, sha256: string, { minBytes, bytes, ...options }: PresignOptions & { minBytes: number; bytes?: number }): Promise<string | null> {
  if (!blobs.presignedUrl) return null;
  const size = bytes ?? (await blobs.stat(parseSha256(sha256)))?.bytes;
  return size !== undefined && size >= minBytes ? blobs.presignedUrl(sha256, options) : null;
}

/** An answer sending the caller to a link of the store: not cached (it expires) and not passed on as a referrer (it is a credential while it lasts). */
export function redirectToLink(link: string, headers: Record<string, string> = {}): Response {
  return new Response(null, { status: 302, headers: { Location: link, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", ...headers } });
}

/**
 * A blob (a splat snapshot, a capture frame, an episode's video) with its ETag, 304s and byte
 * ranges. `bytes`, when the caller's record knows the size, spares asking the store for it.
 */
export async function serveBlob(opts: { blobs: BlobStore; sha256: string; bytes?: number; what: string; contentType: string; disposition: string; headers: Headers }): Promise<Response> {
  const sha256 = parseSha256(opts.sha256, `${opts.what} id`);
  const stat = opts.bytes !== undefined ? { bytes: opts.bytes } : await opts.blobs.stat(sha256);
  if (!stat) throw new AppError("NOT_FOUND", `No ${opts.what} blob ${sha256} is stored`);
  const etag = `"${sha256}"`;
  const common = {
    ETag: etag,
    "Accept-Ranges": "bytes",
    "Cache-Control": "private, max-age=31536000, immutable",
    "Content-Type": opts.contentType,
    "Content-Disposition": opts.disposition,
  };
  const inm = opts.headers.get("if-none-match");
  if (inm && inm.split(",").some((t) => t.trim().replace(/^W\//, "") === etag || t.trim() === "*")) return new Response(null, { status: 304, headers: common });
  // A Range whose If-Range names another version gets the whole blob, as HTTP requires.
  const ifRange = opts.headers.get("if-range");
  const range = ifRange && ifRange !== etag ? null : parseRangeHeader(opts.headers.get("range"), stat.bytes);
  if (range && range.start < 0) return new Response(null, { status: 416, headers: { ...common, "Content-Range": `bytes */${stat.bytes}` } });
  if (stat.bytes === 0) return new Response(new Uint8Array(0), { status: 200, headers: { ...common, "Content-Length": "0" } });
  const body = await opts.blobs.get(sha256, range ?? undefined);
  const web = Readable.toWeb(body) as ReadableStream<Uint8Array>;
  if (!range) return new Response(web, { status: 200, headers: { ...common, "Content-Length": String(stat.bytes) } });
  return new Response(web, {
    status: 206,
    headers: { ...common, "Content-Length": String(range.end - range.start + 1), "Content-Range": `bytes ${range.start}-${range.end}/${stat.bytes}` },
  });
}
