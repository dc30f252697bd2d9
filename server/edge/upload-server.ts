import path from "node:path";
import { db } from "../db";
import { env } from "../env";
import { rawEpisodeDir } from "../datasets/datasets.schemas";
import { uploadLocker } from "../db/upload-locks";
import { blobStore } from "../storage/blobs";
import { createEdgeUploadServer, type EdgeUploadServer } from "./uploads.service";

const globalForEdge = globalThis as unknown as { gantryEdgeUploads?: EdgeUploadServer };

/** The process-wide tus server for agents' episode uploads, configured from settings. */
export function edgeUploadServer(): EdgeUploadServer {
  globalForEdge.gantryEdgeUploads ??= createEdgeUploadServer({
    db: db(),
    tusDir: path.join(env().GANTRY_HOME, "uploads", "edge"),
    uploadRoot: env().EDGE_UPLOAD_DIR,
    rawDir: (orgId, repoId) => rawEpisodeDir(env(), orgId, repoId),
    maxBytes: env().EDGE_MAX_UPLOAD_BYTES,
    minFreeBytes: env().EDGE_MIN_FREE_DISK_BYTES,
    // With a bucket, uploads in progress are rows and blobs, not files in tusDir.
    blobs: blobStore(),
    // Any web process may get any request of an upload: its lock lives in Postgres.
    locker: uploadLocker(),
  });
  return globalForEdge.gantryEdgeUploads;
}
