import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { writeRawEpisode } from "../../tests/helpers/edge-episodes";
import { addMember, createOrgWithMember } from "../../tests/helpers/factories";
import type { OrgActor } from "../auth/roles";
import { env } from "../env";
import { silentProgress } from "../jobs/progress";
import { commitEpisode } from "./builder.service";
import { datasetDir, datasetStoreDir, rawEpisodeDir } from "./datasets.schemas";
import { getDataset } from "./datasets.service";
import { deleteDataset, deleteDatasetRows } from "./delete.service";
import { encodeEpisode } from "./encode.service";
import { registerRawEpisode } from "./ingest.service";
import { blobStore } from "../storage/blobs";

// Deleting a whole dataset, on real files under this run's GANTRY_HOME (DATASETS_DIR and
// EDGE_UPLOAD_DIR) and the run's database. Episodes are encoded here without a worker.

const db = testDb();
let admin: OrgActor;
let operator: OrgActor;
let viewer: OrgActor;
let outside: string;
const unique = () => Math.random().toString(36).slice(2, 8);
const exists = (p: string) => fs.lstat(p).then(() => true, () => false);

beforeAll(async () => {
  const org = await createOrgWithMember(db, "admin");
  admin = org.actor;
  operator = await addMember(db, org.orgId, "operator");
  viewer = await addMember(db, org.orgId, "viewer");
  outside = await fs.mkdtemp(path.join(os.tmpdir(), "gantry-outside-"));
});
afterAll(async () => {
  await db.$disconnect();
  await fs.rm(outside, { recursive: true, force: true });
});

/** A dataset with one episode in it (encoded, built) and one that failed, its raw files still waiting. */
async function makeDataset(repoId: string, { frames = 3 } = {}) {
  const raw = rawEpisodeDir(env(), admin.orgId, repoId);
  const dataset = await db.dataset.create({ data: { orgId: admin.orgId, repoId } });
  await writeRawEpisode(raw, { number: 0, frames, cameras: ["front"] });
  const ready = await db.episode.create({ data: { orgId: admin.orgId, datasetId: dataset.id, number: 0, mode: "edge", task: "pick" } });
  await encodeEpisode(db, { episodeId: ready.id, settings: env(), progress: silentProgress, blobs: blobStore(), isLastAttempt: true, commit: (d, episodeId) => commitEpisode(d, { episodeId, blobs: blobStore(), settings: env() }) });
  await writeRawEpisode(raw, { number: 1, frames: 2, cameras: ["front"] });
  await db.episode.create({ data: { orgId: admin.orgId, datasetId: dataset.id, number: 1, mode: "edge", status: "failed", error: "Camera front: frame 1 is cut short" } });
  return { id: dataset.id, repoId, raw, link: datasetDir(env(), admin.orgId, repoId), store: datasetStoreDir(env(), dataset.id), readyEpisodeId: ready.id };
}

/** Files that must all exist while the dataset does. */
async function expectFilesOf(d: Awaited<ReturnType<typeof makeDataset>>, present: boolean) {
  expect(await exists(d.link), d.link).toBe(present);
  expect(await exists(d.store), d.store).toBe(present);
  expect(await exists(path.join(d.raw, "data/episode-1.jsonl")), d.raw).toBe(present);
  if (present) expect(await exists(path.join(d.link, "meta/info.json"))).toBe(true);
}

const trashOf = (id: string) => [path.join(env().DATASETS_DIR, ".deleted", id), path.join(env().EDGE_UPLOAD_DIR, ".deleted", id)];

describe("deleteDataset", () => {
  it("removes the rows, the folder, its builds and the waiting raw episodes, and leaves other datasets alone", async () => {
    const owner = `lab-${unique()}`;
    const doomed = await makeDataset(`${owner}/doomed`);
    const kept = await makeDataset(`${owner}/kept`);
    await expectFilesOf(doomed, true);
    expect(await fs.readdir(path.join(doomed.store, "builds"))).not.toHaveLength(0);

    const result = await deleteDataset(db, { actor: admin, datasetId: doomed.id, settings: env() });
    expect(result).toEqual({ id: doomed.id, repoId: doomed.repoId, episodes: 2, left: [] });

    expect(await db.dataset.findUnique({ where: { id: doomed.id } })).toBeNull();
    expect(await db.episode.count({ where: { datasetId: doomed.id } })).toBe(0);
    await expectFilesOf(doomed, false);
    for (const t of trashOf(doomed.id)) expect(await exists(t), t).toBe(false);
    const audit = await db.auditEvent.findFirstOrThrow({ where: { orgId: admin.orgId, action: "dataset.delete", target: doomed.id } });
    expect(audit.data).toMatchObject({ repoId: doomed.repoId, episodes: 2 });

    // The other dataset, under the same owner folder, is whole.
    await expectFilesOf(kept, true);
    const detail = await getDataset(db, { orgId: admin.orgId, datasetId: kept.id });
    expect(detail.episodes).toMatchObject({ ready: 1, failed: 1 });
    expect(await exists(path.join(kept.store, "episodes", kept.readyEpisodeId, "front.mp4"))).toBe(true);

    await expect(deleteDataset(db, { actor: admin, datasetId: doomed.id, settings: env() })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("is for admins and owners only, and not across organisations", async () => {
    const d = await makeDataset(`roles-${unique()}`);
    await expect(deleteDataset(db, { actor: viewer, datasetId: d.id, settings: env() })).rejects.toMatchObject({ code: "FORBIDDEN", message: "Only admins and owners can delete a dataset; you are a viewer here" });
    await expect(deleteDataset(db, { actor: operator, datasetId: d.id, settings: env() })).rejects.toMatchObject({ code: "FORBIDDEN", message: "Only admins and owners can delete a dataset; you are an operator here" });
    const stranger = (await createOrgWithMember(db, "owner")).actor;
    await expect(deleteDataset(db, { actor: stranger, datasetId: d.id, settings: env() })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await db.dataset.findUnique({ where: { id: d.id } })).not.toBeNull();
    await expectFilesOf(d, true);

    const owner = await addMember(db, admin.orgId, "owner");
    await deleteDataset(db, { actor: owner, datasetId: d.id, settings: env() });
    await expectFilesOf(d, false);
  });

  it("refuses while an episode is still encoding, naming it, and deletes once that job has ended", async () => {
    const d = await makeDataset(`busy-${unique()}`);
    await writeRawEpisode(d.raw, { number: 2, frames: 2, cameras: ["front"] });
    const queued = await registerRawEpisode(db, { orgId: admin.orgId, createdById: admin.userId, repoId: d.repoId, episodeIndex: 2, mode: "edge" });
    // No worker here: only the Job row matters.
    await db.$executeRaw`SELECT graphile_worker.remove_job(${queued.jobId}::text)`;
    await expect(deleteDataset(db, { actor: admin, datasetId: d.id, settings: env() })).rejects.toMatchObject({
      code: "CONFLICT",
      message: `${d.repoId} cannot be deleted while episode 2 is encoding; wait for that to finish or cancel it on the Jobs page, then delete it`,
    });
    await expectFilesOf(d, true);
    expect(await exists(path.join(d.raw, "data/episode-2.jsonl"))).toBe(true);

    await db.job.update({ where: { id: queued.jobId! }, data: { status: "cancelled", finishedAt: new Date() } });
    expect((await deleteDataset(db, { actor: admin, datasetId: d.id, settings: env() })).episodes).toBe(3);
    await expectFilesOf(d, false);
  });

  it("after a crash between the commit and the file removal, the same repo id makes a fresh dataset, and the next delete sweeps", async () => {
    const repoId = `again-${unique()}/pick`;
    const old = await makeDataset(repoId, { frames: 5 });
    // The rows go and the files wait in the trash; the process "dies" before emptying it.
    await deleteDatasetRows(db, { actor: admin, datasetId: old.id, settings: env() });
    for (const t of trashOf(old.id)) expect(await exists(t), t).toBe(true);
    expect(await exists(old.link)).toBe(false);
    expect(await exists(old.raw)).toBe(false);

    // A new recording under the same name: registered, encoded and built on its own.
    await writeRawEpisode(rawEpisodeDir(env(), admin.orgId, repoId), { number: 0, frames: 2, cameras: ["wrist"] });
    const registered = await registerRawEpisode(db, { orgId: admin.orgId, createdById: admin.userId, repoId, episodeIndex: 0, mode: "edge" });
    await db.$executeRaw`SELECT graphile_worker.remove_job(${registered.jobId}::text)`;
    await encodeEpisode(db, { episodeId: registered.episodeId, settings: env(), progress: silentProgress, blobs: blobStore(), isLastAttempt: true, commit: (d, episodeId) => commitEpisode(d, { episodeId, blobs: blobStore(), settings: env() }) });
    await db.job.update({ where: { id: registered.jobId! }, data: { status: "succeeded", finishedAt: new Date() } });
    const fresh = await db.dataset.findUniqueOrThrow({ where: { orgId_repoId: { orgId: admin.orgId, repoId } } });
    expect(fresh.id).not.toBe(old.id);
    const detail = await getDataset(db, { orgId: admin.orgId, datasetId: fresh.id });
    expect(detail.episodes).toMatchObject({ ready: 1, failed: 0, encoding: 0 });
    expect(detail.totalFrames).toBe(2);
    expect(detail.cameras).toEqual(["wrist"]);
    const info = JSON.parse(await fs.readFile(path.join(datasetDir(env(), admin.orgId, repoId), "meta/info.json"), "utf8"));
    expect(info).toMatchObject({ total_episodes: 1, total_frames: 2 });
    expect(await fs.realpath(datasetDir(env(), admin.orgId, repoId))).toContain(fresh.id);

    // Any later delete finishes the interrupted one's removal, and only that.
    const other = await makeDataset(`sweep-${unique()}`);
    await deleteDataset(db, { actor: admin, datasetId: other.id, settings: env() });
    for (const t of trashOf(old.id)) expect(await exists(t), t).toBe(false);
    expect(await exists(path.join(datasetDir(env(), admin.orgId, repoId), "meta/info.json"))).toBe(true);

    await deleteDataset(db, { actor: admin, datasetId: fresh.id, settings: env() });
    expect(await exists(datasetDir(env(), admin.orgId, repoId))).toBe(false);
  });

  it("never removes anything whose real place is outside DATASETS_DIR and EDGE_UPLOAD_DIR", async () => {
    const precious = async (name: string) => {
      const dir = path.join(outside, name);
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, "keep.txt"), "keep");
      return dir;
    };
    const kept = (dir: string) => fs.readFile(path.join(dir, "keep.txt"), "utf8");

    // A link inside the dataset's store, and the dataset folder itself replaced by a link: the links go, their targets stay.
    const d = await makeDataset(`links-${unique()}`);
    const inStore = await precious("linked-from-store");
    await fs.symlink(inStore, path.join(d.store, "episodes", d.readyEpisodeId, "elsewhere"));
    const asFolder = await precious("linked-as-folder");
    await fs.rm(d.link);
    await fs.symlink(asFolder, d.link);
    await deleteDataset(db, { actor: admin, datasetId: d.id, settings: env() });
    expect(await exists(d.link)).toBe(false);
    expect(await exists(d.store)).toBe(false);
    expect(await kept(inStore)).toBe("keep");
    expect(await kept(asFolder)).toBe("keep");

    // An owner folder under EDGE_UPLOAD_DIR that is a link to another disk: its raw files are not Gantry's to remove.
    const owner = `far-${unique()}`;
    const farOwner = await precious(`${owner}-owner`);
    await fs.mkdir(path.join(env().EDGE_UPLOAD_DIR, admin.orgId), { recursive: true });
    await fs.symlink(farOwner, path.join(env().EDGE_UPLOAD_DIR, admin.orgId, owner));
    const far = await makeDataset(`${owner}/arm`);
    const result = await deleteDataset(db, { actor: admin, datasetId: far.id, settings: env() });
    expect(result.left).toEqual([far.raw]);
    expect(await exists(path.join(farOwner, "arm/data/episode-1.jsonl"))).toBe(true);
    expect(await kept(farOwner)).toBe("keep");
    expect(await exists(far.store)).toBe(false);
    expect(await db.dataset.findUnique({ where: { id: far.id } })).toBeNull();
    await fs.rm(path.join(env().EDGE_UPLOAD_DIR, admin.orgId, owner));

    // The trash itself made a link out of the root: nothing is removed, nothing is written there, and what was moved comes back.
    const trapped = await makeDataset(`trap-${unique()}`);
    const trap = await precious("trash-trap");
    const trash = path.join(env().EDGE_UPLOAD_DIR, ".deleted");
    const hadTrash = await exists(trash);
    if (hadTrash) await fs.rename(trash, `${trash}.aside`);
    await fs.symlink(trap, trash);
    try {
      await expect(deleteDataset(db, { actor: admin, datasetId: trapped.id, settings: env() })).rejects.toMatchObject({ code: "INTERNAL", message: expect.stringMatching(/is a link that leads elsewhere/) });
    } finally {
      await fs.rm(trash);
      if (hadTrash) await fs.rename(`${trash}.aside`, trash);
    }
    expect(await fs.readdir(trap)).toEqual(["keep.txt"]);
    expect(await db.dataset.findUnique({ where: { id: trapped.id } })).not.toBeNull();
    await expectFilesOf(trapped, true);
    await deleteDataset(db, { actor: admin, datasetId: trapped.id, settings: env() });
    await expectFilesOf(trapped, false);
  });
});
