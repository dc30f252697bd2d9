import type { Readable } from "node:stream";
import { z } from "zod";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { BlobStore } from "../storage/blob-store";
import { versionFileSchema, type VersionManifest } from "./version-files.schemas";

// A version's files as a downloader sees them: an ONNX version is one file (model.onnx); a
// LeRobot checkpoint is its pretrained_model folder (config, safetensors, processors). Each
// file is named by a relative path and carries its sha256, so a download can be checked and
// resumed file by file.

/** The files a version holds, or NOT_FOUND / CONFLICT (not yet stored) said plainly. */
export async function versionManifest(db: Db, { orgId, versionId }: { orgId: string; versionId: string }): Promise<VersionManifest> {
  const v = await db.modelVersion.findFirst({ where: { id: versionId, orgId }, include: { model: { select: { name: true } } } });
  if (!v) throw new AppError("NOT_FOUND", "That model version does not exist in this organisation");
  const files =
    v.kind === "lerobot-checkpoint"
      ? z.array(versionFileSchema).parse(v.files ?? [])
      : v.sha256
        ? [{ path: "model.onnx", sha256: v.sha256, bytes: Number(v.bytes ?? 0) }]
        : [];
  if (!files.length) throw new AppError("CONFLICT", `${v.model.name} v${v.number} has no file yet (${v.status}); try again once it has arrived`);
  return { modelId: v.modelId, model: v.model.name, versionId: v.id, number: v.number, kind: v.kind, status: v.status, files };
}

/** When a download goes straight to the store: files of at least `minBytes`, by links that work for `expiresInS`. */
export interface DirectDownloads {
  minBytes: number;
  expiresInS: number;
}

/**
 * One file of a version, by its relative path, with its size, ready to stream (whole or a range),
 * or — when the store hands out links and the file is large — a short-lived link to it there.
 */
export async function openVersionFile(
  db: Db,
  blobs: BlobStore,
  { orgId, versionId, filePath }: { orgId: string; versionId: string; filePath: string },
): Promise<{ file: z.infer<typeof versionFileSchema>; read: (range?: { start: number; end: number }) => Promise<Readable>; directLink: (direct: DirectDownloads) => Promise<string | null> }> {
  const manifest = await versionManifest(db, { orgId, versionId });
  const file = manifest.files.find((f) => f.path === filePath);
  if (!file) throw new AppError("NOT_FOUND", `${manifest.model} v${manifest.number} has no file ${JSON.stringify(filePath.slice(0, 200))}; its files are ${manifest.files.map((f) => f.path).join(", ")}`);
  const stat = await blobs.stat(file.sha256);
  if (!stat) throw new AppError("NOT_FOUND", `The stored bytes of ${file.path} are missing from the blob store`);
  const fileName = file.path.split("/").pop()!;
  return {
    file: { ...file, bytes: stat.bytes },
    read: (range) => blobs.get(file.sha256, range),
    directLink: async ({ minBytes, expiresInS }) => (blobs.presignedUrl && stat.bytes >= minBytes ? blobs.presignedUrl(file.sha256, { expiresInS, fileName }) : null),
  };
}
