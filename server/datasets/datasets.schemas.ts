import path from "node:path";
import { z } from "zod";
import { AppError } from "../errors";

// Names that become folders: repo ids, camera names, feature keys. Each is checked here so no
// user-given name can leave the folder it is joined to.

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/** "name" or "owner/name", as LeRobot and the hub spell dataset ids. */
export const repoIdSchema = z
  .string()
  .trim()
  .min(1, "is empty")
  .max(193)
  .refine((v) => {
    const parts = v.split("/");
    return parts.length <= 2 && parts.every((p) => SEGMENT.test(p) && !p.includes(".."));
  }, "must be name or owner/name: letters, digits, '.', '_' and '-', each part starting with a letter or digit, no '..'");

/** A camera as the recorder names its folder (images/<camera>/, videos/<camera>/). */
export const cameraNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "must be letters, digits, '_' and '-' (a folder name)");

export const episodeNumberSchema = z.number().int().min(0).max(10_000_000);

export const taskTextSchema = z.string().trim().max(2000);

export type RepoId = z.infer<typeof repoIdSchema>;

/** Joins `parts` under `root` and proves the result stays inside it. */
export function resolveInside(root: string, ...parts: string[]): string {
  const base = path.resolve(root);
  const full = path.resolve(base, ...parts);
  if (full !== base && !full.startsWith(base + path.sep)) throw new AppError("BAD_REQUEST", `${parts.join("/")} is outside ${path.basename(base)}`);
  return full;
}

export function parseRepoId(value: string): string {
  const parsed = repoIdSchema.safeParse(value);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `Repo id ${JSON.stringify(value).slice(0, 120)} ${parsed.error.issues[0].message}`);
  return parsed.data;
}

/** EDGE_UPLOAD_DIR/<repo_id>: where an agent puts a dataset's raw episodes. */
export function rawEpisodeDir(env: { EDGE_UPLOAD_DIR: string }, repoId: string): string {
  return resolveInside(env.EDGE_UPLOAD_DIR, ...parseRepoId(repoId).split("/"));
}

/** DATASETS_DIR/<repo_id>: the built dataset (a link to its current build). */
export function datasetDir(env: { DATASETS_DIR: string }, repoId: string): string {
  return resolveInside(env.DATASETS_DIR, ...parseRepoId(repoId).split("/"));
}

/**
 * DATASETS_DIR/.store/<dataset id>: builds and each episode's own files. Repo ids cannot start
 * with '.', so this never meets a dataset folder.
 */
export function datasetStoreDir(env: { DATASETS_DIR: string }, datasetId: string): string {
  z.uuid().parse(datasetId);
  return resolveInside(env.DATASETS_DIR, ".store", datasetId);
}
