import fs from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { z } from "zod";
import type { OrgActor } from "../auth/roles";
import type { Db } from "../db";
import { AppError } from "../errors";
import type { BlobStore } from "../storage/blob-store";
import { ARCHIVE_WAITS_MS, findWaitingUpload, isInfoFile, localArchiveContent, removeArchiveUpload, storeArchiveUpload, sweepArchiveUploads } from "./archive-uploads";
import type { stagedImportSchema, ImportMapping } from "./datasets.schemas";
import { checkImportMapping, checkRepoIdFree, inspectDataset, startImport, type ImportSettings } from "./import.service";
import { findDatasetRoot } from "./lerobot/source";
import { ArchiveTooLargeError, unpackUpload } from "./archive.service";

// An uploaded archive, once unpacked: its files are put into the blob store (archive-uploads.ts)
// and it is imported at once when its features are LeRobot's usual ones (or the upload named the
// mapping), else it waits for the person to confirm the mapping (importStaged) or discard it, on
// whichever web process they reach. Uploads nobody confirms go after a day.

export type StagedImport = z.infer<typeof stagedImportSchema>;

export type UploadOutcome = { kind: "started"; datasetId: string; jobId: string } | ({ kind: "staged" } & StagedImport);

/**
 * An archive sent as a request body: a taken repo id and a declared length over
 * DATASET_MAX_IMPORT_BYTES are refused before a byte is read; the body is unpacked into a
 * staging folder (removed again if anything after fails) and imported or staged.
 */
export async function importArchiveUpload(
  db: Db,
  { actor, body, declaredBytes, repoId, from, mapping, settings, blobs }: { actor: OrgActor; body: Readable | null; declaredBytes: number | null; repoId: string; from: string; mapping?: ImportMapping; settings: ImportSettings & { DATASET_MAX_IMPORT_BYTES: number }; blobs: BlobStore },
): Promise<UploadOutcome> {
  await checkRepoIdFree(db, { orgId: actor.orgId, repoId });
  const maxBytes = settings.DATASET_MAX_IMPORT_BYTES;
  if (declaredBytes !== null && declaredBytes > maxBytes) throw new ArchiveTooLargeError(maxBytes);
  if (!body) throw new AppError("BAD_REQUEST", "Send the archive as the request body");
  await sweepArchiveUploads(db, settings).catch(() => {});
  const staging = await unpackUpload(body, settings, maxBytes);
  try {
    return await importUploadedArchive(db, { actor, staging, repoId, from, mapping, settings, blobs });
  } catch (error) {
    // Only an upload no import took: a failure after the import started leaves it to the import.
    await removeArchiveUpload(db, settings, path.basename(staging), { datasetId: null }).catch(() => {});
    if (!(await db.archiveUpload.count({ where: { id: path.basename(staging) } }))) await fs.rm(staging, { recursive: true, force: true });
    throw error;
  }
}

/** Stores an unpacked upload and starts its import, or leaves it waiting when its mapping needs the person's word. */
export async function importUploadedArchive(
  db: Db,
  { actor, staging, repoId, from, mapping, settings, blobs }: { actor: OrgActor; staging: string; repoId: string; from: string; mapping?: ImportMapping; settings: ImportSettings; blobs: BlobStore },
): Promise<UploadOutcome> {
  const { root } = await findDatasetRoot(path.join(staging, "content"));
  const inspection = mapping ? null : await inspectDataset(root);
  if (mapping) await checkImportMapping(root, mapping);
  const upload = await storeArchiveUpload(db, blobs, { actor, staging, repoId, from });
  if (inspection?.needsConfirmation) {
    return { kind: "staged", stagingId: upload.id, expiresAt: new Date(upload.createdAt.getTime() + ARCHIVE_WAITS_MS), inspection };
  }
  const started = await startImport(db, { actor, repoId, sourceDir: path.join(staging, "content"), archiveId: upload.id, removeSource: true, from, mapping, settings });
  return { kind: "started", ...started };
}

/** Imports a waiting upload with the mapping the person confirmed. */
export async function importStaged(db: Db, { actor, input, settings, blobs }: { actor: OrgActor; input: { stagingId: string; repoId: string; mapping: ImportMapping }; settings: ImportSettings; blobs: BlobStore }): Promise<{ datasetId: string; jobId: string }> {
  const upload = await findWaitingUpload(db, actor, input.stagingId);
  // This web process may not be the one that took the upload: the features are read from the
  // archive's meta/info.json, fetched from the blob store when need be.
  const content = await localArchiveContent(blobs, settings, upload, { only: isInfoFile });
  const { root } = await findDatasetRoot(content);
  await checkImportMapping(root, input.mapping);
  await checkRepoIdFree(db, { orgId: actor.orgId, repoId: input.repoId });
  // The import owns the upload from here: it is no longer waiting, and goes once imported.
  return startImport(db, { actor, repoId: input.repoId, sourceDir: content, archiveId: upload.id, removeSource: true, from: upload.from, mapping: input.mapping, settings });
}

/** Throws away a waiting upload. */
export async function discardStaged(db: Db, { actor, input, settings }: { actor: OrgActor; input: { stagingId: string }; settings: { DATASETS_DIR: string } }): Promise<{ stagingId: string }> {
  const upload = await findWaitingUpload(db, actor, input.stagingId);
  // Confirmed on another web process meanwhile: its import goes on, and is not undone here.
  if (!(await removeArchiveUpload(db, settings, upload.id, { orgId: actor.orgId, datasetId: null }))) {
    throw new AppError("NOT_FOUND", "This upload is being imported already (it was confirmed meanwhile); delete the dataset to undo that");
  }
  return { stagingId: input.stagingId };
}
