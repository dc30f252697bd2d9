import fs from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { writeRawEpisode } from "../../tests/helpers/edge-episodes";
import { createOrgWithMember } from "../../tests/helpers/factories";
import type { OrgActor } from "../auth/roles";
import { env } from "../env";
import { rawEpisodeDir, repoIdSchema } from "./datasets.schemas";
import { getIngestStatus, registerRawEpisode } from "./ingest.service";

const db = testDb();
let actor: OrgActor;
let other: OrgActor;
const unique = () => Math.random().toString(36).slice(2, 8);

beforeAll(async () => {
  actor = (await createOrgWithMember(db, "operator")).actor;
  other = (await createOrgWithMember(db, "operator")).actor;
});
afterAll(() => db.$disconnect());

describe("repo ids", () => {
  it("accepts name and owner/name, refuses anything that could leave the folder", () => {
    for (const ok of ["so101", "lab/so101-pick.v2", "A_b/C-d"]) expect(repoIdSchema.safeParse(ok).success).toBe(true);
    for (const bad of ["", "../x", "a/../b", "a/b/c", "/abs", "a/", ".hidden", "a/.b", "x..y", "a b", "a\\b", "é"]) expect(repoIdSchema.safeParse(bad).success, bad).toBe(false);
    expect(rawEpisodeDir(env(), actor.orgId, "lab/arm")).toBe(path.join(env().EDGE_UPLOAD_DIR, actor.orgId, "lab", "arm"));
    expect(() => rawEpisodeDir(env(), "../x", "lab/arm")).toThrow();
    expect(() => rawEpisodeDir(env(), actor.orgId, "../etc")).toThrow(/Repo id/);
  });
});

describe("registerRawEpisode", () => {
  it("creates the dataset and the episode and queues one encoding job; again is harmless", async () => {
    const repoId = `lab/arm-${unique()}`;
    await writeRawEpisode(rawEpisodeDir(env(), actor.orgId, repoId), { number: 0, frames: 3 });
    const first = await registerRawEpisode(db, { orgId: actor.orgId, createdById: actor.userId, repoId, episodeIndex: 0, task: "Pick the cube", mode: "edge" });
    expect(first.alreadyRegistered).toBe(false);
    const job = await db.job.findUniqueOrThrow({ where: { id: first.jobId! } });
    expect(job).toMatchObject({ kind: "datasets.encode-episode", status: "queued", maxAttempts: 3, orgId: actor.orgId });
    const episode = await db.episode.findUniqueOrThrow({ where: { id: first.episodeId }, include: { dataset: true } });
    expect(episode).toMatchObject({ number: 0, status: "encoding", task: "Pick the cube", cameras: ["front", "wrist"], mode: "edge", jobId: first.jobId });
    expect(episode.dataset).toMatchObject({ repoId, orgId: actor.orgId, source: "edge" });

    const again = await registerRawEpisode(db, { orgId: actor.orgId, createdById: actor.userId, repoId, episodeIndex: 0, mode: "edge" });
    expect(again).toEqual({ episodeId: first.episodeId, jobId: first.jobId, alreadyRegistered: true });
    expect(await db.job.count({ where: { orgId: actor.orgId, payload: { path: ["episodeId"], equals: first.episodeId } } })).toBe(1);

    // Two at once: still one episode and one job.
    await writeRawEpisode(rawEpisodeDir(env(), actor.orgId, repoId), { number: 1, frames: 2, cameras: ["front"] });
    const both = await Promise.all([0, 1].map(() => registerRawEpisode(db, { orgId: actor.orgId, createdById: null, repoId, episodeIndex: 1, mode: "edge" })));
    expect(new Set(both.map((b) => b.episodeId)).size).toBe(1);
    expect(both.filter((b) => b.alreadyRegistered)).toHaveLength(1);

    const status = await getIngestStatus(db, { orgId: actor.orgId, repoId });
    expect(status).toMatchObject({ status: "ENCODING", episodes: { total: 2, encoded: 0, failed: 0 } });
  });

  it("queues a failed episode again, but never a second job for one that is encoding", async () => {
    const repoId = `retry-${unique()}`;
    await writeRawEpisode(rawEpisodeDir(env(), actor.orgId, repoId), { number: 4, frames: 2, cameras: ["top"] });
    const first = await registerRawEpisode(db, { orgId: actor.orgId, createdById: null, repoId, episodeIndex: 4, mode: "edge" });
    await db.episode.update({ where: { id: first.episodeId }, data: { status: "failed", error: "Camera top: frame 1 (frame-1.png) is cut short" } });
    expect(await getIngestStatus(db, { orgId: actor.orgId, repoId })).toMatchObject({ status: "FAILED", progress: 1, episodes: { total: 1, failed: 1 } });
    expect((await getIngestStatus(db, { orgId: actor.orgId, repoId })).message).toMatch(/episode 4: Camera top: frame 1/);
    const second = await registerRawEpisode(db, { orgId: actor.orgId, createdById: null, repoId, episodeIndex: 4, mode: "edge" });
    expect(second.alreadyRegistered).toBe(false);
    expect(second.jobId).not.toBe(first.jobId);
    expect(await db.episode.findUniqueOrThrow({ where: { id: first.episodeId } })).toMatchObject({ status: "encoding", error: null, jobId: second.jobId });
  });

  it("names what is missing, and keeps a repo id of the same name in another organisation apart", async () => {
    const repoId = `lab/missing-${unique()}`;
    await expect(registerRawEpisode(db, { orgId: actor.orgId, createdById: null, repoId, episodeIndex: 2, mode: "edge" })).rejects.toThrow(/missing data\/episode-2\.jsonl.*images\/<camera>\/episode-2/);
    const root = rawEpisodeDir(env(), actor.orgId, repoId);
    await writeRawEpisode(root, { number: 2, frames: 2, cameras: ["front"] });
    await expect(registerRawEpisode(db, { orgId: actor.orgId, createdById: null, repoId, episodeIndex: 2, mode: "local" })).rejects.toThrow(/videos\/<camera>\/episode-2\.mp4/);
    await fs.rm(path.join(root, "data"), { recursive: true });
    await expect(registerRawEpisode(db, { orgId: actor.orgId, createdById: null, repoId, episodeIndex: 2, mode: "edge" })).rejects.toThrow(/data\/episode-2\.jsonl/);
    await expect(registerRawEpisode(db, { orgId: actor.orgId, createdById: null, repoId: "a/../b", episodeIndex: 2, mode: "edge" })).rejects.toMatchObject({ code: "BAD_REQUEST" });

    const shared = `shared-${unique()}`;
    await writeRawEpisode(rawEpisodeDir(env(), actor.orgId, shared), { number: 0, frames: 2, cameras: ["front"] });
    await registerRawEpisode(db, { orgId: actor.orgId, createdById: null, repoId: shared, episodeIndex: 0, mode: "edge" });
    // Another organisation's repo id of the same name is its own: its folder holds none of ours,
    // and registering there neither reads our frames nor tells it that ours exist.
    await expect(registerRawEpisode(db, { orgId: other.orgId, createdById: null, repoId: shared, episodeIndex: 0, mode: "edge" })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/incomplete/) });
    await expect(getIngestStatus(db, { orgId: other.orgId, repoId: shared })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await writeRawEpisode(rawEpisodeDir(env(), other.orgId, shared), { number: 0, frames: 3, cameras: ["top"] });
    const theirs = await registerRawEpisode(db, { orgId: other.orgId, createdById: null, repoId: shared, episodeIndex: 0, mode: "edge" });
    const ours = await db.episode.findFirstOrThrow({ where: { orgId: actor.orgId, number: 0, dataset: { repoId: shared } }, include: { dataset: true } });
    const theirEpisode = await db.episode.findUniqueOrThrow({ where: { id: theirs.episodeId }, include: { dataset: true } });
    expect(theirEpisode.dataset.orgId).toBe(other.orgId);
    expect(theirEpisode.datasetId).not.toBe(ours.datasetId);
    expect(theirEpisode.cameras).toEqual(["top"]);
    expect(ours.cameras).toEqual(["front"]);
  });

  it("accepts LeRobot's images/observation.images.<camera>/episode_000000/frame_000000.png spelling", async () => {
    const repoId = `padded-${unique()}`;
    const root = rawEpisodeDir(env(), actor.orgId, repoId);
    await writeRawEpisode(root, { number: 7, frames: 2, cameras: ["front"], pad: 6 });
    await fs.mkdir(path.join(root, "images/observation.images.front"));
    await fs.rename(path.join(root, "images/front/episode-000007"), path.join(root, "images/observation.images.front/episode_000007"));
    const r = await registerRawEpisode(db, { orgId: actor.orgId, createdById: null, repoId, episodeIndex: 7, mode: "edge" });
    expect((await db.episode.findUniqueOrThrow({ where: { id: r.episodeId } })).cameras).toEqual(["front"]);
    const empty = `empty-${unique()}`;
    await db.dataset.create({ data: { orgId: actor.orgId, repoId: empty } });
    expect(await getIngestStatus(db, { orgId: actor.orgId, repoId: empty })).toMatchObject({ status: "UPLOADING", progress: 0 });
  });
});
