import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { addMember, createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { datasetWithBuild } from "../../tests/helpers/training";
import { startWorker, type StartedWorker } from "../../worker/worker";
import type { OrgActor } from "../auth/roles";
import { getEvaluation, latestEvaluation, startEvaluation } from "./evaluation.service";
import { checkQualityGate, setQualityGate } from "./gate.service";
import { startRun } from "../training/runs.service";
import { compatEvaluate, compatEvaluateInput, compatStatus } from "./compat.service";
import os from "node:os";
import { startImport } from "../datasets/import.service";
import { rebuildDataset } from "../datasets/builder.service";
import { episodeStoreDir, readStoredEpisode, writeStoredEpisode } from "../datasets/episode-store";
import { storeEpisodeFiles } from "../datasets/episode-files";
import { excludeFlaggedEpisodes } from "./derive.service";
import { cancelJob } from "../jobs/jobs.service";
import { writeV3Dataset } from "../../tests/helpers/lerobot-datasets";
import { blobStore } from "../storage/blobs";

// Scoring through the job queue (a worker of this test's own database) on the real SO-101
// recording kept in the repository, the quality gate a training run must pass, and bad input.

let database: TestDatabase;
let db: Db;
let worker: StartedWorker;
let admin: OrgActor;
let operator: OrgActor;

beforeAll(async () => {
  database = await createTestDatabase("evaluation");
  db = createDb(database.url, 4);
  const org = await createOrgWithMember(db, "admin");
  admin = org.actor;
  operator = await addMember(db, org.orgId, "operator");
  worker = await startWorker({ url: database.url, concurrency: 2, log: () => {} });
}, 60_000);

afterAll(async () => {
  await worker?.stop();
  await db?.$disconnect();
  await database?.drop();
});

const finished = (evaluationId: string) =>
  waitFor(async () => {
    const e = await db.datasetEvaluation.findUniqueOrThrow({ where: { id: evaluationId } });
    return ["succeeded", "failed", "cancelled"].includes(e.status) && e;
  }, { timeoutMs: 90_000, what: "the scoring to end" });

/** Everything a job said, line by line. */
const said = async (jobId: string) => (await db.jobEvent.findMany({ where: { jobId } })).map((x) => x.message).join("\n");

describe("scoring a dataset", { timeout: 120_000 }, () => {
  let datasetId: string;
  let evaluationId: string;

  it("scores the real recording's build through the job queue and keeps the report with the build it describes", async () => {
    const dataset = await datasetWithBuild(db, env(), admin.orgId);
    datasetId = dataset.id;
    ({ evaluationId } = await startEvaluation(db, { actor: operator, input: { datasetId, metrics: ["t", "r", "a", "c"], framesPerEpisode: 4 } }));
    const done = await finished(evaluationId);
    expect(done.status, done.error ?? "").toBe("succeeded");
    expect(done.buildId).toBe(dataset.buildId);

    const detail = await getEvaluation(db, { orgId: admin.orgId, evaluationId });
    expect(detail.isCurrentBuild).toBe(true);
    expect(detail.report!.metrics.map((m) => m.code)).toEqual(["a", "t", "c", "r"]);
    for (const m of detail.report!.metrics) {
      expect(m.score, m.code).toBeGreaterThan(0);
      expect(m.subScores.length).toBeGreaterThan(1);
      for (const s of m.subScores) expect(s.explain.length).toBeGreaterThan(10);
    }
    expect(detail.report!.units.kind).toBe("range-100");
    expect(detail.report!.episodes.map((e) => e.index)).toEqual([0, 1, 2, 3]);
    expect(detail.report!.jointRanges.map((j) => j.name)).toContain("shoulder_pan.pos");
    expect(detail.report!.intervalHistogram.length).toBeGreaterThan(0);
    expect(detail.overall).toBeCloseTo(detail.report!.overall!, 6);
    expect((await latestEvaluation(db, { orgId: admin.orgId, datasetId }))?.id).toBe(evaluationId);

    // The build has not changed: scoring it again with the same settings reuses the report, unless a fresh one is asked for.
    const again = await startEvaluation(db, { actor: operator, input: { datasetId, metrics: ["t", "r", "a", "c"], framesPerEpisode: 4 } });
    expect((await finished(again.evaluationId)).overall).toBe(done.overall);
    expect(await said(again.jobId)).toMatch(/that report is reused/);
    const fresh = await startEvaluation(db, { actor: operator, input: { datasetId, metrics: ["t", "r", "a", "c"], framesPerEpisode: 4, fresh: true } });
    expect((await finished(fresh.evaluationId)).overall).toBe(done.overall);
    expect(await said(fresh.jobId)).not.toMatch(/reused/);
    const fewer = await startEvaluation(db, { actor: operator, input: { datasetId, metrics: ["t"], framesPerEpisode: 4 } });
    await finished(fewer.evaluationId);
    expect(await said(fewer.jobId)).not.toMatch(/reused/);

    // Another organisation sees none of it.
    const other = (await createOrgWithMember(db, "admin")).actor;
    await expect(getEvaluation(db, { orgId: other.orgId, evaluationId })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(startEvaluation(db, { actor: other, input: { datasetId, metrics: ["t"], framesPerEpisode: 4 } })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("scores a new build of a dataset decoding only the episode videos that changed or that the report shows", async () => {
    const source = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-eval-videos-"));
    await writeV3Dataset(source, { episodes: 6, frames: 30, fps: 10, videoKeys: ["observation.images.front"] });
    const repoId = `lab/videos-${Date.now().toString(36)}`;
    const { datasetId: id, jobId } = await startImport(db, { actor: operator, repoId, sourceDir: source, removeSource: false, from: "test", settings: env() });
    const imported = await waitFor(async () => { const j = await db.job.findUniqueOrThrow({ where: { id: jobId } }); return ["succeeded", "failed"].includes(j.status) && j; }, { timeoutMs: 90_000, what: "the import" });
    expect(imported.status, imported.error ?? "").toBe("succeeded");
    const first = await startEvaluation(db, { actor: operator, input: { datasetId: id, metrics: ["h", "v"], framesPerEpisode: 4 } });
    const firstRow = await finished(first.evaluationId);
    expect(firstRow.status, firstRow.error ?? "").toBe("succeeded");
    expect(await said(first.jobId)).not.toMatch(/unchanged since an earlier scoring/);
    // A new build of the same episodes (as after a change that leaves their videos alone): its report
    // cannot be reused, but the videos of the two episodes whose frames the report does not show are not read again.
    await rebuildDataset(db, { datasetId: id, settings: env(), blobs: blobStore() });
    const second = await startEvaluation(db, { actor: operator, input: { datasetId: id, metrics: ["h", "v"], framesPerEpisode: 4 } });
    const secondRow = await finished(second.evaluationId);
    expect(secondRow.status, secondRow.error ?? "").toBe("succeeded");
    expect(secondRow.buildId).not.toBe(firstRow.buildId);
    const log = await said(second.jobId);
    expect(log).not.toMatch(/that report is reused/);
    expect(log).toMatch(/2 of 6 episode videos were unchanged since an earlier scoring/);
    expect(secondRow.scores).toEqual(firstRow.scores);
    // A fresh scoring reads everything.
    const fresh = await startEvaluation(db, { actor: operator, input: { datasetId: id, metrics: ["h", "v"], framesPerEpisode: 4, fresh: true } });
    expect((await finished(fresh.evaluationId)).scores).toEqual(firstRow.scores);
    expect(await said(fresh.jobId)).not.toMatch(/unchanged since an earlier scoring/);
  });

  it("stops when cancelled: the scoring ends cancelled, with no report and no score on the dataset's page", async () => {
    const source = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-eval-cancel-"));
    await writeV3Dataset(source, { episodes: 24, frames: 30, fps: 10, videoKeys: ["observation.images.front"] });
    const repoId = `lab/cancel-${Date.now().toString(36)}`;
    const { datasetId: id, jobId: importJob } = await startImport(db, { actor: operator, repoId, sourceDir: source, removeSource: false, from: "test", settings: env() });
    const imported = await waitFor(async () => { const j = await db.job.findUniqueOrThrow({ where: { id: importJob } }); return ["succeeded", "failed"].includes(j.status) && j; }, { timeoutMs: 90_000, what: "the import" });
    expect(imported.status, imported.error ?? "").toBe("succeeded");
    const { evaluationId: id2, jobId } = await startEvaluation(db, { actor: operator, input: { datasetId: id, metrics: ["h", "v"], framesPerEpisode: 8, fresh: true } });
    await waitFor(async () => (await db.job.findUniqueOrThrow({ where: { id: jobId } })).status === "running", { timeoutMs: 60_000, intervalMs: 10, what: "the scoring to start" });
    await cancelJob(db, { actor: operator, jobId });
    const ended = await finished(id2);
    expect(ended).toMatchObject({ status: "cancelled", report: null, overall: null });
    // The job's row is ended by the worker a moment after the evaluation's.
    await expect.poll(async () => (await db.job.findUniqueOrThrow({ where: { id: jobId } })).status, { timeout: 30_000 }).toBe("cancelled");
    expect(await latestEvaluation(db, { orgId: admin.orgId, datasetId: id })).toBeNull();
  });

  it("keeps training off a dataset that misses the quality gate, naming what failed; an admin may override with a reason", async () => {
    const input = { datasetId, policyType: "act", steps: 100, saveFreq: 100, logFreq: 10 };
    // Off by default: nothing is checked.
    expect((await checkQualityGate(db, { orgId: admin.orgId, datasetId })).passed).toBe(true);
    await setQualityGate(db, { actor: admin, gate: { enabled: true, overall: 0.99, metrics: { t: 0.1, h: 0.5 } } });
    const verdict = await checkQualityGate(db, { orgId: admin.orgId, datasetId });
    expect(verdict.passed).toBe(false);
    const latestId = (await latestEvaluation(db, { orgId: admin.orgId, datasetId }))!.id;
    expect(verdict.evaluationId).toBe(latestId);
    expect(verdict.failures).toEqual([expect.stringMatching(/^Overall 0\.\d\d is below the gate's 0\.99$/), "High-fidelity vision was not measured, and the gate asks for 0.50"]);
    await expect(startRun(db, { actor: operator, input })).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringContaining(`/datasets/${datasetId}/evaluations/${latestId}`) });
    await expect(startRun(db, { actor: operator, input: { ...input, gateOverride: { reason: "pilot run" } } })).rejects.toMatchObject({ code: "FORBIDDEN" });
    // Past the gate, the run is refused for what comes next (no training target here), and the override is on record.
    await expect(startRun(db, { actor: admin, input: { ...input, gateOverride: { reason: "pilot run on a known-good set" } } })).rejects.toMatchObject({ message: expect.stringMatching(/no training target/) });

    // A gate the evaluation meets lets the run through to the same point.
    await setQualityGate(db, { actor: admin, gate: { enabled: true, overall: 0.1, metrics: { t: 0.1 } } });
    expect((await checkQualityGate(db, { orgId: admin.orgId, datasetId })).passed).toBe(true);
    await expect(startRun(db, { actor: operator, input })).rejects.toMatchObject({ message: expect.stringMatching(/no training target/) });

    // A dataset never scored does not pass an enabled gate.
    const fresh = await datasetWithBuild(db, env(), admin.orgId);
    expect(await checkQualityGate(db, { orgId: admin.orgId, datasetId: fresh.id })).toMatchObject({ passed: false, failures: [expect.stringMatching(/has no evaluation of its current episodes/)] });
    await setQualityGate(db, { actor: admin, gate: { enabled: false, overall: null, metrics: {} } });
  });

  it("fails a dataset it cannot read with a message that names the problem, and stores nothing half-written", async () => {
    const broken = await datasetWithBuild(db, env(), admin.orgId);
    fs.writeFileSync(path.join(broken.build, "meta", "info.json"), "{ not json");
    const { evaluationId: id } = await startEvaluation(db, { actor: operator, input: { datasetId: broken.id, metrics: ["t", "r"], framesPerEpisode: 4 } });
    const done = await finished(id);
    expect(done).toMatchObject({ status: "failed", report: null, overall: null });
    expect(done.error).toMatch(/meta\/info.json is not JSON/);

    const nan = await datasetWithBuild(db, env(), admin.orgId);
    fs.rmSync(path.join(nan.build, "data", "chunk-000", "file-000.parquet"));
    const { evaluationId: id2 } = await startEvaluation(db, { actor: operator, input: { datasetId: nan.id, metrics: ["t"], framesPerEpisode: 4 } });
    expect((await finished(id2)).error).toMatch(/data\/chunk-000\/file-000\.parquet is missing/);
  });

  it("answers the earlier DataBench API: the request as it was, the scores under the same keys, at once or when done", async () => {
    const dataset = await datasetWithBuild(db, env(), admin.orgId);
    const waited = await compatEvaluate(db, { actor: operator, settings: env(), input: compatEvaluateInput.parse({ dataset: dataset.repoId, metrics: "t,r", token: "hf_unused", wait: true, timeout: 90 }) });
    expect(waited).toMatchObject({ status: "succeeded", dataset: dataset.repoId, results: { t: expect.any(Number), r: expect.any(Number) } });
    expect(Object.keys((waited as { results: object }).results).sort()).toEqual(["r", "t"]);
    const queued = await compatEvaluate(db, { actor: operator, settings: env(), input: compatEvaluateInput.parse({ dataset: dataset.repoId, metrics: "c" }) });
    expect(queued.status_url).toBe(`/api/databench/evaluations/${queued.evaluation_id}`);
    await finished(queued.evaluation_id);
    expect(await compatStatus(db, { orgId: admin.orgId, evaluationId: queued.evaluation_id })).toMatchObject({ status: "succeeded", results: { c: expect.any(Number) } });
    expect(compatEvaluateInput.safeParse({ dataset: "x", metrics: "a,z" }).error?.issues[0].message).toMatch(/z is not one/);
    await expect(compatEvaluate(db, { actor: operator, settings: env(), input: compatEvaluateInput.parse({ dataset: "absent" }) })).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringMatching(/No dataset absent/) });
  });

  it("excludes flagged episodes into a new dataset, linking their stored files, and the new one scores clean", async () => {
    // The real recording, imported; then one of its episodes gets a joint that never moves.
    const source = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-eval-import-"));
    fs.cpSync(path.resolve("tests/fixtures/so101-record-v3"), source, { recursive: true });
    const repoId = `lab/flagged-${Date.now().toString(36)}`;
    const { datasetId: id, jobId } = await startImport(db, { actor: operator, repoId, sourceDir: source, removeSource: false, from: "test", settings: env() });
    const imported = await waitFor(async () => { const j = await db.job.findUniqueOrThrow({ where: { id: jobId } }); return ["succeeded", "failed"].includes(j.status) && j; }, { timeoutMs: 90_000, what: "the import" });
    expect(imported.status, imported.error ?? "").toBe("succeeded");
    const episodes = await db.episode.findMany({ where: { datasetId: id }, orderBy: { datasetIndex: "asc" } });
    expect(episodes).toHaveLength(4);
    const dir = episodeStoreDir(env(), id, episodes[2].id);
    const stored = await readStoredEpisode(dir);
    await writeStoredEpisode(dir, { ...stored, rows: stored.rows.map((r) => ({ ...r, "observation.state": r["observation.state"].map((v, j) => (j === 2 ? 40 : v)) })) });
    await storeEpisodeFiles(db, blobStore(), { episodeId: episodes[2].id, dir });
    await rebuildDataset(db, { datasetId: id, settings: env(), blobs: blobStore() });

    const { evaluationId: scored } = await startEvaluation(db, { actor: operator, input: { datasetId: id, metrics: ["t", "r"], framesPerEpisode: 4 } });
    const scoredRow = await finished(scored);
    expect(scoredRow.status, scoredRow.error ?? "").toBe("succeeded");
    const report = (await getEvaluation(db, { orgId: admin.orgId, evaluationId: scored })).report!;
    expect(report.episodes.filter((e) => e.findings.length).map((e) => [e.index, e.findings.map((f) => f.flag)])).toEqual([[2, ["frozen-joint"]]]);

    const derived = await excludeFlaggedEpisodes(db, { actor: operator, input: { evaluationId: scored, repoId: `${repoId}-clean` }, settings: env(), blobs: blobStore() });
    expect(derived).toMatchObject({ kept: 3, excluded: [2] });
    const kept = await db.episode.findMany({ where: { datasetId: derived.datasetId }, orderBy: { datasetIndex: "asc" } });
    expect(kept.map((e) => [e.datasetIndex, e.length])).toEqual([0, 1, 3].map((i, n) => [n, episodes[i].length]));
    const linked = (e: { id: string }, ds: string) => fs.statSync(path.join(episodeStoreDir(env(), ds, e.id), fs.readdirSync(episodeStoreDir(env(), ds, e.id))[0])).ino;
    expect(linked(kept[2], derived.datasetId)).toBe(linked(episodes[3], id));
    const fresh = await db.dataset.findUniqueOrThrow({ where: { id: derived.datasetId } });
    expect(fresh).toMatchObject({ source: "derived", repoId: `${repoId}-clean` });
    const info = JSON.parse(fs.readFileSync(path.join(env().DATASETS_DIR, admin.orgId, ...fresh.repoId.split("/"), "meta", "info.json"), "utf8"));
    expect(info.total_episodes).toBe(3);

    const { evaluationId: again } = await startEvaluation(db, { actor: operator, input: { datasetId: derived.datasetId, metrics: ["t", "r"], framesPerEpisode: 4 } });
    expect((await finished(again)).status).toBe("succeeded");
    expect((await getEvaluation(db, { orgId: admin.orgId, evaluationId: again })).report!.episodes.flatMap((e) => e.findings)).toEqual([]);
    // The source is untouched, and the name cannot be taken twice.
    expect(await db.episode.count({ where: { datasetId: id, deletedAt: null } })).toBe(4);
    await expect(excludeFlaggedEpisodes(db, { actor: operator, input: { evaluationId: scored, repoId: `${repoId}-clean` }, settings: env(), blobs: blobStore() })).rejects.toMatchObject({ code: "CONFLICT" });

    // A derive that fails half-way (an episode's files gone from under it: from this machine
    // and from the blob store) leaves nothing behind under its name.
    const away = `${episodeStoreDir(env(), id, episodes[3].id)}.away`;
    fs.renameSync(episodeStoreDir(env(), id, episodes[3].id), away);
    const storedFiles = (await db.episode.findUniqueOrThrow({ where: { id: episodes[3].id } })).storedFiles!;
    await db.episode.update({ where: { id: episodes[3].id }, data: { storedFiles: { "episode.json": { sha256: "0".repeat(64), bytes: 10 } } } });
    try {
      await expect(excludeFlaggedEpisodes(db, { actor: operator, input: { evaluationId: scored, repoId: `${repoId}-broken` }, settings: env(), blobs: blobStore() })).rejects.toThrow(/episode.json of episode 3 is not on this machine/);
    } finally {
      fs.rmSync(episodeStoreDir(env(), id, episodes[3].id), { recursive: true, force: true });
      fs.renameSync(away, episodeStoreDir(env(), id, episodes[3].id));
      await db.episode.update({ where: { id: episodes[3].id }, data: { storedFiles } });
    }
    expect(await db.dataset.findFirst({ where: { orgId: admin.orgId, repoId: `${repoId}-broken` } })).toBeNull();
    expect(fs.existsSync(path.join(env().DATASETS_DIR, admin.orgId, ...`${repoId}-broken`.split("/")))).toBe(false);
    expect(await db.episode.count({ where: { datasetId: id, deletedAt: null } })).toBe(4);
  });
});
