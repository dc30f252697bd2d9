import type { BlobStore } from "../storage/blob-store";
import { serveBlob } from "../storage/serve-blob";

const contentTypes = { spz: "application/octet-stream", ply: "application/octet-stream" } as const;

export async function serveSnapshotBlob(opts: { blobs: BlobStore; sha256: string; format: "spz" | "ply"; headers: Headers }): Promise<Response> {
  return serveBlob({ ...opts, what: "snapshot", contentType: contentTypes[opts.format], disposition: `attachment; filename="${opts.sha256.slice(0, 12)}.${opts.format}"` });
}

/** A snapshot file as found (a blob, or a PLY written from an SPZ upload just now). */
export async function serveSnapshotFile(opts: { blobs: BlobStore; file: { kind: "blob"; sha256: string; format: "spz" | "ply" } | { kind: "converted"; bytes: Buffer; etag: string }; headers: Headers }): Promise<Response> {
  const { file } = opts;
  if (file.kind === "blob") return serveSnapshotBlob({ blobs: opts.blobs, sha256: file.sha256, format: file.format, headers: opts.headers });
  const common = { ETag: file.etag, "Cache-Control": "private, max-age=31536000, immutable", "Content-Type": contentTypes.ply, "Content-Disposition": 'attachment; filename="splat.ply"' };
  if (opts.headers.get("if-none-match")?.split(",").some((t) => t.trim().replace(/^W\//, "") === file.etag)) return new Response(null, { status: 304, headers: common });
  return new Response(file.bytes as Uint8Array<ArrayBuffer>, { status: 200, headers: { ...common, "Content-Length": String(file.bytes.length) } });
}
