import crypto from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { datasetDir, rawEpisodeDir } from "./datasets.schemas";
import { moveFoldersUnderOrgs } from "./org-folders.service";

const db = testDb();
afterAll(() => db.$disconnect());

describe("folders from before repo ids belonged to organisations", () => {
  it("are moved under their dataset's organisation once; folders no dataset owns stay", async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-org-folders-"));
    const settings = { DATASETS_DIR: path.join(root, "datasets"), EDGE_UPLOAD_DIR: path.join(root, "raw") };
    const { orgId } = await createOrgWithMember(db, "owner");
    const repoId = `lab/old-${crypto.randomBytes(4).toString("hex")}`;
    await db.dataset.create({ data: { orgId, repoId } });
    for (const r of [settings.DATASETS_DIR, settings.EDGE_UPLOAD_DIR]) {
      await fs.mkdir(path.join(r, repoId, "data"), { recursive: true });
      await fs.writeFile(path.join(r, repoId, "data", "episode-0.jsonl"), "{}\n");
    }
    await fs.mkdir(path.join(settings.EDGE_UPLOAD_DIR, "lab", "nobody"), { recursive: true });

    const lines: string[] = [];
    expect(await moveFoldersUnderOrgs(db, settings, (m) => lines.push(m))).toBeGreaterThanOrEqual(2);
    expect(await fs.readFile(path.join(datasetDir(settings, orgId, repoId), "data", "episode-0.jsonl"), "utf8")).toBe("{}\n");
    expect(await fs.readFile(path.join(rawEpisodeDir(settings, orgId, repoId), "data", "episode-0.jsonl"), "utf8")).toBe("{}\n");
    await expect(fs.access(path.join(settings.DATASETS_DIR, repoId))).rejects.toThrow();
    await fs.access(path.join(settings.EDGE_UPLOAD_DIR, "lab", "nobody"));
    expect(lines.join("\n")).toMatch(/Moved \d+ dataset folder/);
    // Again: the pass is recorded as done, so the next start looks at nothing.
    expect(await moveFoldersUnderOrgs(db, settings, () => {})).toBe(0);
    await fs.access(path.join(settings.DATASETS_DIR, ".org-folders"));
    expect(await fs.readFile(path.join(datasetDir(settings, orgId, repoId), "data", "episode-0.jsonl"), "utf8")).toBe("{}\n");
    await fs.rm(root, { recursive: true, force: true });
  });
});
