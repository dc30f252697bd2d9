import { Readable } from "node:stream";
import { parseRangeHeader } from "../api/byte-range";
import { parseSha256, type BlobStore } from "../storage/blob-store";
import { AppError } from "../errors";

// Blobs are named by their sha256, so the name is a strong ETag and the bytes never change:
// a viewer may cache them for good and resume a large scene with Range.

const contentTypes = { spz: "application/octet-stream", ply: "application/octet-stream" } as const;

export async function serveSnapshotBlob(opts: { blobs: BlobStore; sha256: string; format: "spz" | "ply"; headers: Headers }): Promise<Response> {
  return serveCaptureBlob({ ...opts, what: "snapshot", contentType: contentTypes[opts.format], disposition: `attachment; filename="${opts.sha256.slice(0, 12)}.${opts.format}"` });
}

/** Any capture blob (a snapshot, a frame, a chunk manifest) with its ETag, 304s and byte ranges. */
export async function serveCaptureBlob(opts: { blobs: BlobStore; sha256: string; what: string; contentType: string; disposition: string; headers: Headers }): Promise<Response> {
  const sha256 = parseSha256(opts.sha256, `${opts.what} id`);
  const stat = await opts.blobs.stat(sha256);
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

/** A snapshot file as found (a blob, or a PLY written from an SPZ upload just now). */
export async function serveSnapshotFile(opts: { blobs: BlobStore; file: { kind: "blob"; sha256: string; format: "spz" | "ply" } | { kind: "converted"; bytes: Buffer; etag: string }; headers: Headers }): Promise<Response> {
  const { file } = opts;
  if (file.kind === "blob") return serveSnapshotBlob({ blobs: opts.blobs, sha256: file.sha256, format: file.format, headers: opts.headers });
  const common = { ETag: file.etag, "Cache-Control": "private, max-age=31536000, immutable", "Content-Type": contentTypes.ply, "Content-Disposition": 'attachment; filename="splat.ply"' };
  if (opts.headers.get("if-none-match")?.split(",").some((t) => t.trim().replace(/^W\//, "") === file.etag)) return new Response(null, { status: 304, headers: common });
  return new Response(file.bytes as Uint8Array<ArrayBuffer>, { status: 200, headers: { ...common, "Content-Length": String(file.bytes.length) } });
}
