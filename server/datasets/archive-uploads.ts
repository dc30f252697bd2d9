import fsp from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { OrgActor } from "../auth/roles";
import type { Db, Tx } from "../db";
import { AppError } from "../errors";
import type { Prisma } from "../generated/prisma/client";
import { fetchMissing, listFiles, putTree } from "../storage/blob-files";
import { storedBlobSchema, type BlobStore } from "../storage/blob-store";
import { resolveInside } from "../security/paths";
import { ROOT_SEARCH_DEPTH } from "./lerobot/source";

// An uploaded dataset archive is unpacked by the web process that took it, into
// DATASETS_DIR/.imports/<id>/content, and each file is then put into the blob store and named on
// an ArchiveUpload row. The worker that imports it — on this machine or another — writes the
// folder again from the store where it lacks it, and removes the row and its folder once the
// import is done; so web processes and workers need no shared disk for uploads. While the row
// has no dataset, the upload waits for the person to confirm its features (at most a day).

export const archiveIdSchema = z.string().regex(/^[0-9a-f]{16}$/, "must be 16 hex digits");

const archivePathSchema = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.startsWith("/") && !p.split("/").some((part) => part === "" || part === "." || part === ".."), "must stay inside the archive");
export const archiveFilesSchema = z.record(archivePathSchema, storedBlobSchema);
export type ArchiveFiles = z.infer<typeof archiveFilesSchema>;

/** How long an upload waits for its features to be confirmed. */
export const ARCHIVE_WAITS_MS = 24 * 3600_000;

/** Files put at once: a bucket is far away, each put is a round trip or more. */
const PARALLEL_PUTS = 4;

/** This machine's folder for an upload: DATASETS_DIR/.imports/<id>. */
export function archiveDir(settings: { DATASETS_DIR: string }, id: string): string {
  return resolveInside(settings.DATASETS_DIR, ".imports", archiveIdSchema.parse(id));
}

/** Its unpacked content (what was in the archive). */
export function archiveContentDir(settings: { DATASETS_DIR: string }, id: string): string {
  return path.join(archiveDir(settings, id), "content");
}

/**
 * Puts every file of an unpacked upload (its folder's `content/`) into the blob store, four at a
 * time, and records the upload, waiting (no dataset yet). The id is the folder's name.
 */
export async function storeArchiveUpload(
  db: Db,
  blobs: BlobStore,
  { actor, staging, repoId, from, signal }: { actor: OrgActor; staging: string; repoId: string; from: string; signal?: AbortSignal },
): Promise<{ id: string; createdAt: Date }> {
  const id = archiveIdSchema.parse(path.basename(staging));
  const content = path.join(staging, "content");
  const files: ArchiveFiles = await putTree(blobs, content, await listFiles(content), { parallel: PARALLEL_PUTS, signal });
  const row = await db.archiveUpload.create({
    data: { id, orgId: actor.orgId, userId: actor.userId, repoId, from, files: files as Prisma.InputJsonValue },
    select: { createdAt: true },
  });
  return { id, createdAt: row.createdAt };
}

/** An upload still waiting for its features to be confirmed, of the actor's organisation (another's reads as absent). */
export async function findWaitingUpload(db: Db, actor: OrgActor, id: string, now = Date.now()) {
  const row = await db.archiveUpload.findFirst({ where: { id: archiveIdSchema.parse(id), orgId: actor.orgId, datasetId: null, createdAt: { gt: new Date(now - ARCHIVE_WAITS_MS) } } });
  if (!row) throw new AppError("NOT_FOUND", "This upload is no longer waiting for its import to be confirmed (it was imported, discarded, or left for over a day); upload the archive again");
  return row;
}

/** Marks a waiting upload as the one a new dataset is imported from; NOT_FOUND when another request took it first. */
export async function claimUpload(tx: Tx, { id, datasetId }: { id: string; datasetId: string }): Promise<void> {
  const { count } = await tx.archiveUpload.updateMany({ where: { id, datasetId: null }, data: { datasetId } });
  if (count !== 1) throw new AppError("NOT_FOUND", "This upload is being imported already, or was discarded; upload the archive again to import it once more");
}

/**
 * The upload's content on this machine (DATASETS_DIR/.imports/<id>/content), with every recorded
 * file present — or those `only` picks: those missing, or of another size, are fetched from the
 * blob store.
 */
export async function localArchiveContent(
  blobs: BlobStore,
  settings: { DATASETS_DIR: string },
  upload: { id: string; files: unknown },
  { only, onFile }: { only?: (rel: string) => boolean; onFile?: (done: number, total: number) => Promise<void> } = {},
): Promise<string> {
  const parsed = archiveFilesSchema.safeParse(upload.files);
  if (!parsed.success) throw new AppError("INTERNAL", `The record of uploaded archive ${upload.id} is damaged; upload the archive again`);
  const content = archiveContentDir(settings, upload.id);
  const wanted = Object.entries(parsed.data).filter(([rel]) => !only || only(rel));
  await fetchMissing(blobs, content, wanted, { onFile, what: (rel) => `${rel} of the uploaded archive` });
  return content;
}

/** Only what tells whether and how to import: each `meta/info.json`, as deep as a dataset's root is looked for. */
const INFO_FILE = new RegExp(`^([^/]+/){0,${ROOT_SEARCH_DEPTH}}meta/info\\.json$`);
export const isInfoFile = (rel: string) => INFO_FILE.test(rel);

/**
 * Forgets an upload matching `where`: its row (its blobs go with the next sweep) and this
 * machine's folder; false, touching nothing, when no such row is left (another request took it).
 */
export async function removeArchiveUpload(db: Db, settings: { DATASETS_DIR: string }, id: string, where: Prisma.ArchiveUploadWhereInput = {}): Promise<boolean> {
  const { count } = await db.archiveUpload.deleteMany({ where: { ...where, id } });
  if (count) await fsp.rm(archiveDir(settings, id), { recursive: true, force: true });
  return count > 0;
}

/**
 * Forgets uploads left waiting for over a day, and removes this machine's folders under
 * DATASETS_DIR/.imports that no upload names and that nothing has touched for a day (an upload
 * imported or discarded on another machine, one cut off while it was unpacked).
 */
export async function sweepArchiveUploads(db: Db, settings: { DATASETS_DIR: string }, now = Date.now()): Promise<void> {
  const cutoff = new Date(now - ARCHIVE_WAITS_MS);
  await db.archiveUpload.deleteMany({ where: { datasetId: null, createdAt: { lt: cutoff } } });
  const root = resolveInside(settings.DATASETS_DIR, ".imports");
  const names = (await fsp.readdir(root).catch(() => [] as string[])).filter((name) => archiveIdSchema.safeParse(name).success);
  if (!names.length) return;
  const known = new Set((await db.archiveUpload.findMany({ where: { id: { in: names } }, select: { id: true } })).map((r) => r.id));
  for (const name of names) {
    if (known.has(name)) continue;
    const stat = await fsp.stat(path.join(root, name)).catch(() => null);
    if (stat && stat.mtimeMs < cutoff.getTime()) await fsp.rm(path.join(root, name), { recursive: true, force: true });
  }
}
