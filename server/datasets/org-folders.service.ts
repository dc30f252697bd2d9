import fs from "node:fs/promises";
import path from "node:path";
import type { Db } from "../db";
import { datasetDir, rawEpisodeDir } from "./datasets.schemas";

// Folders of an instance from before repo ids belonged to organisations sat at
// DATASETS_DIR/<repo_id> and EDGE_UPLOAD_DIR/<repo_id>. Each is moved, once, under its
// dataset's organisation. A folder no dataset owns is left where it is and named.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function isThere(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

/** Moves pre-organisation dataset and raw folders under their organisation's folder. */
export async function moveFoldersUnderOrgs(db: Db, settings: { DATASETS_DIR: string; EDGE_UPLOAD_DIR: string }, log: (m: string) => void): Promise<number> {
  // Once a pass has moved everything, later starts have nothing to look at: nothing writes the
  // old layout any more.
  const done = path.join(settings.DATASETS_DIR, ".org-folders");
  if (await isThere(done)) return 0;
  const datasets = await db.dataset.findMany({ select: { orgId: true, repoId: true } });
  let moved = 0;
  let failed = 0;
  for (const d of datasets) {
    for (const [root, to] of [
      [settings.DATASETS_DIR, datasetDir(settings, d.orgId, d.repoId)],
      [settings.EDGE_UPLOAD_DIR, rawEpisodeDir(settings, d.orgId, d.repoId)],
    ] as const) {
      // A repo id whose owner part is itself an organisation-like id is already where it belongs.
      if (UUID.test(d.repoId.split("/")[0])) continue;
      const from = path.join(root, ...d.repoId.split("/"));
      if (!(await isThere(from)) || (await isThere(to))) continue;
      await fs.mkdir(path.dirname(to), { recursive: true });
      await fs.rename(from, to).then(
        () => (moved += 1),
        (error: Error) => {
          failed += 1;
          log(`Could not move ${from} under its organisation: ${error.message}`);
        },
      );
    }
  }
  if (moved) log(`Moved ${moved} dataset folder(s) under their organisation's folder`);
  if (!failed) {
    await fs.mkdir(settings.DATASETS_DIR, { recursive: true });
    await fs.writeFile(done, "Dataset and raw folders are under their organisation's folder.\n");
  }
  return moved;
}
