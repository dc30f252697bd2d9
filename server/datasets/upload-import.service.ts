import fs from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { z } from "zod";
import type { OrgActor } from "../auth/roles";
import type { Db } from "../db";
import { AppError } from "../errors";
import { resolveInside, stagedImportSchema, type ImportMapping } from "./datasets.schemas";
import { checkImportMapping, checkRepoIdFree, inspectDataset, startImport, type ImportSettings } from "./import.service";
import { findDatasetRoot } from "./lerobot/source";
import { ArchiveTooLargeError, unpackUpload } from "./archive.service";

// An uploaded archive, once unpacked: imported at once when its features are LeRobot's usual
// ones (or the upload named the mapping), else kept in its staging folder for the person to
// confirm the mapping (importStaged) or discard it. Staged uploads nobody confirms go after a
// day. The staging folder holds `staged.json` (whose it is) beside `content/`.

const STAGED_FILE = "staged.json";
const STAGED_FOR_MS = 24 * 3600_000;
const stagedFileSchema = z.object({ orgId: z.uuid(), userId: z.string(), repoId: z.string(), from: z.string(), createdAt: z.coerce.date() });

export type StagedImport = z.infer<typeof stagedImportSchema>;

function parseStaged(text: string | null) {
  if (text === null) return null;
  try {
    const parsed = stagedFileSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export type UploadOutcome = { kind: "started"; datasetId: string; jobId: string } | ({ kind: "staged" } & StagedImport);

/**
 * An archive sent as a request body: a taken repo id and a declared length over
 * DATASET_MAX_IMPORT_BYTES are refused before a byte is read; the body is unpacked into a
 * staging folder (removed again if anything after fails) and imported or staged.
 */
export async function importArchiveUpload(
  db: Db,
  { actor, body, declaredBytes, repoId, from, mapping, settings }: { actor: OrgActor; body: Readable | null; declaredBytes: number | null; repoId: string; from: string; mapping?: ImportMapping; settings: ImportSettings & { DATASET_MAX_IMPORT_BYTES: number } },
): Promise<UploadOutcome> {
  await checkRepoIdFree(db, { orgId: actor.orgId, repoId });
  const maxBytes = settings.DATASET_MAX_IMPORT_BYTES;
  if (declaredBytes !== null && declaredBytes > maxBytes) throw new ArchiveTooLargeError(maxBytes);
  if (!body) throw new AppError("BAD_REQUEST", "Send the archive as the request body");
  await sweepStagedUploads(settings).catch(() => {});
  const staging = await unpackUpload(body, settings, maxBytes);
  try {
    return await importUploadedArchive(db, { actor, staging, repoId, from, mapping, settings });
  } catch (error) {
    await fs.rm(staging, { recursive: true, force: true });
    throw error;
  }
}

/** Starts the import of an unpacked upload, or stages it when its mapping needs the person's word. */
export async function importUploadedArchive(
  db: Db,
  { actor, staging, repoId, from, mapping, settings }: { actor: OrgActor; staging: string; repoId: string; from: string; mapping?: ImportMapping; settings: ImportSettings },
): Promise<UploadOutcome> {
  const { root } = await findDatasetRoot(path.join(staging, "content"));
  if (!mapping) {
    const inspection = await inspectDataset(root);
    if (inspection.needsConfirmation) {
      const createdAt = new Date();
      await fs.writeFile(path.join(staging, STAGED_FILE), JSON.stringify({ orgId: actor.orgId, userId: actor.userId, repoId, from, createdAt }));
      return { kind: "staged", stagingId: path.basename(staging), expiresAt: new Date(createdAt.getTime() + STAGED_FOR_MS), inspection };
    }
  } else {
    await checkImportMapping(root, mapping);
  }
  const started = await startImport(db, { actor, repoId, sourceDir: path.join(staging, "content"), removeSource: true, from, mapping, settings });
  return { kind: "started", ...started };
}

async function readStaged(settings: { DATASETS_DIR: string }, actor: OrgActor, stagingId: string) {
  const dir = resolveInside(settings.DATASETS_DIR, ".imports", stagedImportSchema.shape.stagingId.parse(stagingId));
  const staged = parseStaged(await fs.readFile(path.join(dir, STAGED_FILE), "utf8").catch(() => null));
  // Another organisation's upload reads as absent.
  if (!staged || staged.orgId !== actor.orgId) throw new AppError("NOT_FOUND", "This upload is no longer waiting for its import to be confirmed (it was imported, discarded, or left for over a day); upload the archive again");
  return { dir, ...staged };
}

/** Imports a staged upload with the mapping the person confirmed. */
export async function importStaged(db: Db, { actor, input, settings }: { actor: OrgActor; input: { stagingId: string; repoId: string; mapping: ImportMapping }; settings: ImportSettings }): Promise<{ datasetId: string; jobId: string }> {
  const staged = await readStaged(settings, actor, input.stagingId);
  const { root } = await findDatasetRoot(path.join(staged.dir, "content"));
  await checkImportMapping(root, input.mapping);
  await checkRepoIdFree(db, { orgId: actor.orgId, repoId: input.repoId });
  const started = await startImport(db, { actor, repoId: input.repoId, sourceDir: path.join(staged.dir, "content"), removeSource: true, from: staged.from, mapping: input.mapping, settings });
  // No longer waiting: the import owns the folder and removes it when done.
  await fs.rm(path.join(staged.dir, STAGED_FILE), { force: true });
  return started;
}

/** Throws away a staged upload. */
export async function discardStaged(_db: Db, { actor, input, settings }: { actor: OrgActor; input: { stagingId: string }; settings: { DATASETS_DIR: string } }): Promise<{ stagingId: string }> {
  const staged = await readStaged(settings, actor, input.stagingId);
  await fs.rm(staged.dir, { recursive: true, force: true });
  return { stagingId: input.stagingId };
}

/** Removes staged uploads left unconfirmed for over a day (imports running from staging are not staged). */
export async function sweepStagedUploads(settings: { DATASETS_DIR: string }, now = Date.now()): Promise<void> {
  const root = resolveInside(settings.DATASETS_DIR, ".imports");
  for (const name of await fs.readdir(root).catch(() => [] as string[])) {
    const text = await fs.readFile(path.join(root, name, STAGED_FILE), "utf8").catch(() => null);
    if (text === null) continue;
    const staged = parseStaged(text);
    if (!staged || now - staged.createdAt.getTime() > STAGED_FOR_MS) await fs.rm(path.join(root, name), { recursive: true, force: true });
  }
}
