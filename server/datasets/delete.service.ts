import fs from "node:fs/promises";
import path from "node:path";
import { recordAudit } from "../audit/audit.service";
import { hasRole, type OrgActor, type Role } from "../auth/roles";
import type { Db } from "../db";
import { AppError } from "../errors";
import { encodeEpisodeJob, importDatasetJob } from "../jobs/catalog";
import { datasetDir, datasetStoreDir, rawEpisodeDir } from "./datasets.schemas";
import { resolveInside } from "../security/paths";

// Deleting a whole dataset: its rows, its folder (the link to the current build), its store
// (builds and each episode's files), the raw episodes still waiting under EDGE_UPLOAD_DIR, and
// an uploaded archive kept after its import failed.
//
// Crash safety: inside the transaction that deletes the rows, under the dataset's row lock,
// each of those is renamed into a trash folder of its root (<root>/.deleted/<dataset id>/); a
// transaction that fails renames them back. Only after the commit is the trash removed. So a
// crash leaves either the dataset as it was (or, mid-transaction, its files in the trash for the
// next delete to finish), or no row and files only under .deleted/, which nothing reads and
// which the next delete sweeps. The repo id's own paths are free at once: a new dataset of the
// same name never meets the old one's files. Nothing is removed whose real location (links
// resolved) is outside DATASETS_DIR or EDGE_UPLOAD_DIR.

export interface DeleteDatasetEnv {
  DATASETS_DIR: string;
  EDGE_UPLOAD_DIR: string;
}

const TRASH = ".deleted";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const errno = (error: unknown) => (error as NodeJS.ErrnoException).code;

async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch (error) {
    if (errno(error) === "ENOENT") return false;
    throw error;
  }
}

/** Whether `target` itself lies inside `root` once every link above it is resolved (`target` itself is not followed). */
async function staysInside(root: string, target: string): Promise<boolean> {
  const realRoot = await fs.realpath(root);
  const realParent = await fs.realpath(path.dirname(target));
  const real = path.join(realParent, path.basename(target));
  return real !== realRoot && real.startsWith(realRoot + path.sep);
}

/** Whether `dir` is itself a folder at that very place: no link on its way from the real root. */
async function isRealFolderOf(root: string, dir: string): Promise<boolean> {
  const real = await fs.realpath(dir).catch(() => null);
  return real === path.join(await fs.realpath(root), path.relative(root, dir));
}

/** <root>/.deleted/<dataset id>, made if needed; refused when a link on the way leads elsewhere. */
async function trashDir(root: string, datasetId: string): Promise<string> {
  const trash = resolveInside(root, TRASH);
  const dir = resolveInside(trash, datasetId);
  for (const d of [trash, dir]) {
    await fs.mkdir(d, { recursive: true });
    if (!(await isRealFolderOf(root, d))) throw new AppError("INTERNAL", `${d} is a link that leads elsewhere; remove it so datasets can be deleted`);
  }
  return dir;
}

interface Move {
  from: string;
  to: string;
}

/** The dataset's paths, each with its root and its name in the trash. */
function datasetPaths(settings: DeleteDatasetEnv, dataset: { id: string; orgId: string; repoId: string }, importSources: string[]) {
  const staging = resolveInside(settings.DATASETS_DIR, ".imports");
  return [
    { root: settings.DATASETS_DIR, from: datasetDir(settings, dataset.orgId, dataset.repoId), name: "folder" },
    { root: settings.DATASETS_DIR, from: datasetStoreDir(settings, dataset.id), name: "store" },
    { root: settings.EDGE_UPLOAD_DIR, from: rawEpisodeDir(settings, dataset.orgId, dataset.repoId), name: "raw" },
    // An uploaded archive whose import failed is kept for a retry; it goes with the dataset.
    ...[...new Set(importSources.map((dir) => path.resolve(dir)).filter((dir) => dir.startsWith(staging + path.sep)).map((dir) => path.join(staging, path.relative(staging, dir).split(path.sep)[0])))]
      .map((from, i) => ({ root: settings.DATASETS_DIR, from, name: `import-upload-${i}` })),
  ];
}

/** Moves the dataset's paths into the trash; those whose real place is outside their root are left, and named. */
async function moveToTrash(settings: DeleteDatasetEnv, dataset: { id: string; orgId: string; repoId: string }, importSources: string[], moves: Move[]): Promise<string[]> {
  const left: string[] = [];
  for (const { root, from, name } of datasetPaths(settings, dataset, importSources)) {
    if (!(await exists(from))) continue;
    if (!(await staysInside(root, from))) {
      left.push(from);
      continue;
    }
    const to = path.join(await trashDir(root, dataset.id), name);
    // Left by an earlier delete of this dataset that did not commit.
    await fs.rm(to, { recursive: true, force: true });
    await fs.rename(from, to);
    moves.push({ from, to });
  }
  return left;
}

async function moveBack(moves: Move[]): Promise<void> {
  for (const { from, to } of [...moves].reverse()) {
    await fs.mkdir(path.dirname(from), { recursive: true }).catch(() => {});
    await fs.rename(to, from).catch((error: unknown) => console.error(`Could not put ${from} back after a failed dataset delete`, error));
  }
}

/** Removes <root>/.deleted/<id> for each id given, or for every id that has no dataset row. */
async function emptyTrash(db: Db, settings: DeleteDatasetEnv, only?: string): Promise<void> {
  for (const root of new Set([settings.DATASETS_DIR, settings.EDGE_UPLOAD_DIR])) {
    const trash = resolveInside(root, TRASH);
    if (!(await exists(trash)) || !(await isRealFolderOf(root, trash))) continue;
    let ids = (await fs.readdir(trash)).filter((name) => UUID.test(name));
    if (only) ids = ids.filter((id) => id === only);
    else if (ids.length) {
      const alive = new Set((await db.dataset.findMany({ where: { id: { in: ids } }, select: { id: true } })).map((d) => d.id));
      ids = ids.filter((id) => !alive.has(id));
    }
    for (const id of ids) {
      const dir = resolveInside(trash, id);
      if (await isRealFolderOf(root, dir)) await fs.rm(dir, { recursive: true, force: true });
    }
  }
}

function list(items: string[]): string {
  return items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

export interface DeletedDataset {
  id: string;
  repoId: string;
  episodes: number;
  /** Paths of the dataset that lead outside DATASETS_DIR or EDGE_UPLOAD_DIR (through a link), left as they were. */
  left: string[];
}

/**
 * Deletes a dataset, its episodes and all its files (admins and owners). Refused while any of
 * its episodes is encoding or it is being imported: a job that is cancelled stops only when it
 * next looks, and could still write into the dataset's folders after they were removed.
 */
export async function deleteDataset(db: Db, input: { actor: OrgActor; datasetId: string; settings: DeleteDatasetEnv; minRole?: Role }): Promise<DeletedDataset> {
  const deleted = await deleteDatasetRows(db, input);
  // The dataset is gone either way; what is not removed now is swept by the next delete.
  await emptyTrash(db, input.settings, deleted.id).catch((error: unknown) => console.error(`Could not remove the files of the deleted dataset ${deleted.repoId}`, error));
  // Finishes what an earlier delete, cut short after its commit, left in the trash.
  await emptyTrash(db, input.settings).catch((error: unknown) => console.error("Could not sweep deleted datasets' files", error));
  return deleted;
}

/**
 * The first half of deleteDataset, on its own what a crash right after the commit leaves: the
 * rows are gone and the files wait in the trash.
 */
export async function deleteDatasetRows(
  db: Db,
  { actor, datasetId, settings, minRole = "admin" }: { actor: OrgActor; datasetId: string; settings: DeleteDatasetEnv; minRole?: Role },
): Promise<DeletedDataset> {
  // An import that replaces a failed one of the same name lowers this to operator (import.service.ts).
  if (!hasRole(actor.role, minRole)) throw new AppError("FORBIDDEN", `Only admins and owners can delete a dataset; you are ${actor.role === "operator" ? "an" : "a"} ${actor.role} here`);
  const dataset = await db.dataset.findFirst({ where: { id: datasetId, orgId: actor.orgId } });
  if (!dataset) throw new AppError("NOT_FOUND", "No such dataset in this organisation");

  const moves: Move[] = [];
  let result: { episodes: number; left: string[] };
  try {
    result = await db.$transaction(
      async (tx) => {
        // A rebuild holds this lock while it writes; rather than wait minutes for it, say so.
        const [locked] = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "Dataset" WHERE "id" = ${dataset.id}::uuid FOR UPDATE SKIP LOCKED`;
        if (!locked) {
          if (await tx.dataset.findUnique({ where: { id: dataset.id } })) throw new AppError("CONFLICT", `${dataset.repoId} is being changed right now (an episode arriving, or the dataset being rewritten); try again in a moment`);
          throw new AppError("NOT_FOUND", "No such dataset in this organisation");
        }
        const episodes = await tx.episode.findMany({ where: { datasetId: dataset.id }, select: { id: true, number: true } });
        const active = await tx.$queryRaw<{ kind: string; episodeId: string | null }[]>`
          SELECT "kind", "payload"->>'episodeId' AS "episodeId" FROM "Job"
          WHERE "status" IN ('queued', 'running')
            AND (("kind" = ${encodeEpisodeJob.name} AND "payload"->>'episodeId' = ANY(${episodes.map((e) => e.id)}::text[]))
              OR ("kind" = ${importDatasetJob.name} AND "payload"->>'datasetId' = ${dataset.id}))`;
        if (active.length) {
          const numbers = episodes.filter((e) => active.some((j) => j.episodeId === e.id)).map((e) => e.number).sort((a, b) => a - b);
          const work = [...(numbers.length ? [`episode${numbers.length === 1 ? "" : "s"} ${list(numbers.map(String))} ${numbers.length === 1 ? "is" : "are"} encoding`] : []), ...(active.some((j) => j.kind === importDatasetJob.name) ? ["its import is running"] : [])];
          throw new AppError("CONFLICT", `${dataset.repoId} cannot be deleted while ${list(work)}; wait for that to finish or cancel it on the Jobs page, then delete it`);
        }
        const imports = await tx.job.findMany({ where: { kind: importDatasetJob.name, payload: { path: ["datasetId"], equals: dataset.id } }, select: { payload: true } });
        const importSources = imports.flatMap((j) => {
          const p = importDatasetJob.payload.safeParse(j.payload);
          return p.success && p.data.removeSource ? [p.data.sourceDir] : [];
        });
        const left = await moveToTrash(settings, dataset, importSources, moves);
        await tx.dataset.delete({ where: { id: dataset.id } });
        await recordAudit(tx, { orgId: actor.orgId, actor, action: "dataset.delete", target: dataset.id, data: { repoId: dataset.repoId, episodes: episodes.length, ...(left.length ? { left } : {}) } });
        return { episodes: episodes.length, left };
      },
      { timeout: 60_000 },
    );
  } catch (error) {
    // Put the files back unless the delete did commit (an error after the commit); when the
    // database cannot say, it most likely rolled back.
    const isStillThere = await db.dataset.findUnique({ where: { id: dataset.id } }).then(Boolean, () => true);
    if (isStillThere) await moveBack(moves);
    throw error;
  }
  return { id: dataset.id, repoId: dataset.repoId, ...result };
}
