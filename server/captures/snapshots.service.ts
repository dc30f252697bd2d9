import { Readable } from "node:stream";
import { AppError } from "../errors";
import type { BlobStore, StoredBlob } from "../storage/blob-store";
import { formatBytes } from "../storage/blob-store";
import { MAX_SPLATS, type SplatCloud } from "./ply";
import { convertPlyToSpz, decodeSpz } from "./spz";

export const MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024 * 1024 - 1;

export interface SnapshotMetadata {
  format: "ply" | "spz";
  splats: number;
  shDegree: number;
  /** The file as uploaded. */
  source: StoredBlob;
  /** The SPZ the viewer streams; the same blob as `source` when an SPZ was uploaded. */
  spz: StoredBlob;
  bounds: { min: [number, number, number]; max: [number, number, number] };
}

function boundsOf(cloud: SplatCloud): SnapshotMetadata["bounds"] {
  const min: [number, number, number] = [Infinity, Infinity, Infinity];
  const max: [number, number, number] = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < cloud.count; i++) {
    for (let c = 0; c < 3; c++) {
      const v = cloud.positions[i * 3 + c];
      if (v < min[c]) min[c] = v;
      if (v > max[c]) max[c] = v;
    }
  }
  return cloud.count ? { min, max } : { min: [0, 0, 0], max: [0, 0, 0] };
}

const isGzip = (b: Uint8Array) => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;

/**
 * Validates a PLY or SPZ snapshot and stores it and its SPZ conversion as blobs. The whole
 * file is in memory: the caller bounds it (an upload limit) before it arrives here.
 */
export async function storeSnapshot(opts: { blobs: BlobStore; file: Uint8Array; maxSplats?: number; signal?: AbortSignal }): Promise<SnapshotMetadata> {
  const { blobs, file, signal } = opts;
  const maxSplats = opts.maxSplats ?? MAX_SPLATS;
  if (file.byteLength > MAX_SNAPSHOT_BYTES) throw new AppError("PAYLOAD_TOO_LARGE", `The snapshot is ${formatBytes(file.byteLength)}; the limit is ${formatBytes(MAX_SNAPSHOT_BYTES)}`);
  const put = (bytes: Uint8Array) => blobs.put(Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]), { signal });
  if (isGzip(file)) {
    const cloud = await decodeSpz(file, { maxSplats });
    const stored = await put(file);
    return { format: "spz", splats: cloud.count, shDegree: cloud.shDegree, source: stored, spz: stored, bounds: boundsOf(cloud) };
  }
  if (Buffer.from(file.buffer, file.byteOffset, Math.min(4, file.byteLength)).toString("latin1") !== "ply\n" && !Buffer.from(file.buffer, file.byteOffset, Math.min(5, file.byteLength)).toString("latin1").startsWith("ply\r")) {
    throw new AppError("UNSUPPORTED_MEDIA_TYPE", "A snapshot must be a binary little-endian 3D Gaussian Splatting PLY or an SPZ (gzip) file");
  }
  const converted = await convertPlyToSpz(file, { maxSplats });
  const source = await put(file);
  const spz = await put(converted.spz);
  return { format: "ply", splats: converted.count, shDegree: converted.shDegree, source, spz, bounds: converted.bounds };
}
