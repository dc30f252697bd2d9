import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { startHubStandIn, type HubStandIn } from "../../tests/helpers/hub-stand-in";
import { writeV21Dataset, writeV3Dataset } from "../../tests/helpers/lerobot-datasets";
import { startWorker, type StartedWorker } from "../../worker/worker";
import type { OrgActor } from "../auth/roles";
import { cancelJob } from "../jobs/jobs.service";
import { compatEvaluate, compatEvaluateInput } from "./compat.service";
import { getEvaluation, listExternalEvaluations } from "./evaluation.service";
import { evaluationCacheDir, startExternalEvaluation } from "./external.service";
import { pruneCache } from "./hub-dataset";

// Scoring datasets Gantry does not hold, through the job queue: LeRobot folders inside the
// import roots (the real SO-101 recording among them) and datasets on a hub stand-in, v2.1
// and v3.0, with what goes wrong told plainly and a cancelled fetch leaving no half-file.

let database: TestDatabase;
let db: Db;
let worker: StartedWorker;
let hub: HubStandIn;
let operator: OrgActor;
let root: string;
const settings = () => ({ ...env(), HF_ENDPOINT: hub.url });
const FIXTURE = path.resolve("tests/fixtures/so101-record-v3");

beforeAll(async () => {
  database = await createTestDatabase("evaluation_external");
  db = createDb(database.url, 4);
  operator = (await createOrgWithMember(db, "operator")).actor;
  worker = await startWorker({ url: database.url, concurrency: 2, log: () => {} });
  hub = await startHubStandIn();
  // The worker's own settings: folders are read inside its import roots.
  fs.mkdirSync(env().datasetImportRoots[0], { recursive: true });
  root = fs.mkdtempSync(path.join(env().datasetImportRoots[0], "eval-"));
}, 60_000);

afterAll(async () => {
  await worker?.stop();
  await hub?.close();
  await db?.$disconnect();
  await database?.drop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

const finished = (evaluationId: string) =>
  waitFor(async () => {
    const e = await db.datasetEvaluation.findUniqueOrThrow({ where: { id: evaluationId } });
    return ["succeeded", "failed", "cancelled"].includes(e.status) && e;
  }, { timeoutMs: 90_000, what: "the scoring to end" });

/** Every file under a folder, by its path inside it, as a hub repository holds them. */
function filesOf(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out[path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join("/")] = fs.readFileSync(path.join(entry.parentPath, entry.name));
  }
  return out;
}

const tmp = (name: string) => fs.mkdtempSync(path.join(os.tmpdir(), `gantry-external-${name}-`));
const said = async (jobId: string) => (await db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } })).map((x) => x.message).join("\n");

describe("scoring a folder on the server", { timeout: 120_000 }, () => {
  it("scores the real SO-101 recording in a folder, keeping the version it read, and reuses the report while the files are the same", async () => {
    const folder = path.join(root, "so101-record");
    fs.cpSync(FIXTURE, folder, { recursive: true });
    const { evaluationId, jobId } = await startExternalEvaluation(db, { actor: operator, input: { source: { kind: "folder", path: folder }, metrics: ["t", "r", "a", "c", "h"], framesPerEpisode: 2 }, settings: settings() });
    const done = await finished(evaluationId);
    expect(done.status, done.error ?? "").toBe("succeeded");
    expect(done).toMatchObject({ datasetId: null, sourceKind: "folder", sourceRef: fs.realpathSync(folder), sourceVersion: expect.stringMatching(/^files:[0-9a-f]{32}$/) });

    const detail = await getEvaluation(db, { orgId: operator.orgId, evaluationId });
    expect(detail.dataset).toBeNull();
    expect(detail.source).toMatchObject({ kind: "folder", label: fs.realpathSync(folder), version: done.sourceVersion });
    expect(detail.report!.episodes.map((e) => e.index)).toEqual([0, 1, 2, 3]);
    expect(detail.report!.units.kind).toBe("range-100");
    for (const m of detail.report!.metrics.filter((x) => x.code !== "h")) expect(m.score, m.code).toBeGreaterThan(0);
    // Its videos were left out of the repository: said so, not a crash.
    expect(detail.report!.episodes.every((e) => e.findings.some((f) => f.flag === "missing-video"))).toBe(true);
    expect((await listExternalEvaluations(db, { orgId: operator.orgId })).map((e) => e.id)).toContain(evaluationId);
    expect(await db.auditEvent.count({ where: { orgId: operator.orgId, action: "dataset.evaluate_external", target: `folder:${fs.realpathSync(folder)}` } })).toBe(1);
    expect(await said(jobId)).toMatch(/Reading /);

    // The same files: the report is reused. A file changed: scored again, under a new version.
    const again = await startExternalEvaluation(db, { actor: operator, input: { source: { kind: "folder", path: folder }, metrics: ["t", "r", "a", "c", "h"], framesPerEpisode: 2 }, settings: settings() });
    expect((await finished(again.evaluationId)).sourceVersion).toBe(done.sourceVersion);
    expect(await said(again.jobId)).toMatch(/that report is reused/);
    const info = path.join(folder, "meta/info.json");
    fs.utimesSync(info, new Date(), new Date(Date.now() + 5_000));
    const changed = await startExternalEvaluation(db, { actor: operator, input: { source: { kind: "folder", path: folder }, metrics: ["t"], framesPerEpisode: 2 }, settings: settings() });
    const changedRow = await finished(changed.evaluationId);
    expect(changedRow.status).toBe("succeeded");
    expect(changedRow.sourceVersion).not.toBe(done.sourceVersion);

    // Another organisation sees none of it.
    const other = (await createOrgWithMember(db, "admin")).actor;
    await expect(getEvaluation(db, { orgId: other.orgId, evaluationId })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await listExternalEvaluations(db, { orgId: other.orgId })).toEqual([]);
  });

  it("scores a v2.1 folder as its v3.0 twin on the hub scores", async () => {
    const spec = { episodes: 4, frames: 40, videoKeys: ["observation.images.front"] };
    const v21 = path.join(root, "twin-v21");
    await writeV21Dataset(v21, spec);
    const v3 = tmp("twin-v3");
    await writeV3Dataset(v3, spec);
    const sha = hub.addDataset({ repo: "lab/twin-v3", files: filesOf(v3) });
    const metrics = ["t", "r", "a", "c", "v"] as const;
    const a = await startExternalEvaluation(db, { actor: operator, input: { source: { kind: "folder", path: v21 }, metrics: [...metrics], framesPerEpisode: 2 }, settings: settings() });
    const b = await startExternalEvaluation(db, { actor: operator, input: { source: { kind: "hub", repo: "lab/twin-v3", revision: "" }, metrics: [...metrics], framesPerEpisode: 2 }, settings: settings() });
    const [ra, rb] = [await finished(a.evaluationId), await finished(b.evaluationId)];
    expect(ra.status, ra.error ?? "").toBe("succeeded");
    expect(rb.status, rb.error ?? "").toBe("succeeded");
    expect(rb).toMatchObject({ sourceKind: "hub", sourceRef: "lab/twin-v3", sourceRevision: "main", sourceVersion: sha, sourceEndpoint: hub.url });
    const scores = (x: typeof ra) => x.scores as Record<string, number | null>;
    for (const code of ["t", "r", "a", "c"]) expect(scores(ra)[code], code).toBeCloseTo(scores(rb)[code]!, 6);
    expect(scores(rb).v).not.toBeNull();
    // The hub's files were fetched from the commit the revision named, into the cache.
    expect(fs.existsSync(path.join(evaluationCacheDir(env()), "hub/lab/twin-v3", sha, "videos/observation.images.front/chunk-000/file-000.mp4"))).toBe(true);
    expect(hub.requests.filter((r) => r.path.startsWith("/datasets/lab/twin-v3/resolve/")).every((r) => r.path.includes(`/resolve/${sha}/`))).toBe(true);
  });

  it("refuses a folder outside the import roots or without a dataset at once, and fails on missing parquet files saying which", async () => {
    const outside = tmp("outside");
    fs.cpSync(FIXTURE, outside, { recursive: true });
    const start = (p: string) => startExternalEvaluation(db, { actor: operator, input: { source: { kind: "folder", path: p }, metrics: ["t"] }, settings: settings() });
    await expect(start(outside)).rejects.toMatchObject({ code: "FORBIDDEN", message: expect.stringMatching(/outside the folders datasets may be imported from/) });
    await expect(start(path.join(root, "..", "..", "..", "..", "..", "..", "tmp"))).rejects.toMatchObject({ code: "FORBIDDEN" });
    await expect(start(path.join(root, "nothing-here"))).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/does not exist/) });

    const damaged = path.join(root, "damaged");
    fs.cpSync(FIXTURE, damaged, { recursive: true });
    fs.writeFileSync(path.join(damaged, "meta/info.json"), '{"codebase_version": "v3.0", "fps": ');
    await expect(start(damaged)).rejects.toMatchObject({ code: "BAD_REQUEST", message: "meta/info.json is not JSON" });

    const partial = path.join(root, "no-data");
    fs.cpSync(FIXTURE, partial, { recursive: true });
    fs.rmSync(path.join(partial, "data"), { recursive: true });
    const { evaluationId } = await start(partial);
    const row = await finished(evaluationId);
    expect(row.status).toBe("failed");
    expect(row.error).toMatch(/data\/chunk-000\/file-000\.parquet is missing/);
  });
});

describe("scoring a dataset on the hub", { timeout: 120_000 }, () => {
  it("fetches only what the numeric metrics read, and scores v2.1 too", async () => {
    const dir = tmp("hub-v21");
    await writeV21Dataset(dir, { episodes: 3, frames: 30, videoKeys: ["observation.images.wrist"] });
    const sha = hub.addDataset({ repo: "lab/arm-v21", revision: "v1.0", files: filesOf(dir) });
    const { evaluationId, jobId } = await startExternalEvaluation(db, { actor: operator, input: { source: { kind: "hub", repo: "lab/arm-v21", revision: "v1.0" }, metrics: ["t", "c"] }, settings: settings() });
    const row = await finished(evaluationId);
    expect(row.status, row.error ?? "").toBe("succeeded");
    expect(row.sourceVersion).toBe(sha);
    const fetched = hub.requests.filter((r) => r.path.startsWith("/datasets/lab/arm-v21/resolve/")).map((r) => r.path);
    expect(fetched.some((p) => p.endsWith("meta/episodes.jsonl"))).toBe(true);
    expect(fetched.filter((p) => p.includes("/data/"))).toHaveLength(3);
    expect(fetched.some((p) => p.includes("/videos/"))).toBe(false);
    expect(await said(jobId)).toMatch(new RegExp(`Scoring lab/arm-v21 at commit ${sha}`));
    expect((await getEvaluation(db, { orgId: operator.orgId, evaluationId })).report!.episodes).toHaveLength(3);
  });

  it("fails plainly on a hub id that does not exist and on a damaged info.json, and through the earlier API scores a hub id Gantry does not hold", async () => {
    const missing = await startExternalEvaluation(db, { actor: operator, input: { source: { kind: "hub", repo: "lab/no-such-dataset" }, metrics: ["t"] }, settings: settings() });
    const row = await finished(missing.evaluationId);
    expect(row.status).toBe("failed");
    expect(row.error).toMatch(/The hub has no dataset lab\/no-such-dataset@main that Gantry can read \(HTTP 404\); check the id/);

    const dir = tmp("hub-damaged");
    await writeV3Dataset(dir, { episodes: 2, frames: 20 });
    hub.addDataset({ repo: "lab/damaged", files: { ...filesOf(dir), "meta/info.json": Buffer.from("{ not json") } });
    const damaged = await finished((await startExternalEvaluation(db, { actor: operator, input: { source: { kind: "hub", repo: "lab/damaged" }, metrics: ["t"] }, settings: settings() })).evaluationId);
    expect(damaged).toMatchObject({ status: "failed", error: "meta/info.json is not JSON" });

    await expect(startExternalEvaluation(db, { actor: operator, input: { source: { kind: "hub", repo: "../etc" }, metrics: ["t"] }, settings: settings() })).rejects.toThrow(/owner\/name/);

    const good = tmp("hub-compat");
    await writeV3Dataset(good, { episodes: 3, frames: 25 });
    hub.addDataset({ repo: "lab/compat", files: filesOf(good) });
    const answer = await compatEvaluate(db, { actor: operator, settings: settings(), input: compatEvaluateInput.parse({ dataset: "lab/compat", metrics: "t,c", wait: true, timeout: 90 }) });
    expect(answer).toMatchObject({ status: "succeeded", dataset: "lab/compat", results: { t: expect.any(Number), c: expect.any(Number) } });
    await expect(compatEvaluate(db, { actor: operator, settings: settings(), input: compatEvaluateInput.parse({ dataset: "lab/..x" }) })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/nor a hub dataset id/) });
  });

  it("cancels a fetch under way, leaving no half-written file in the cache", async () => {
    const dir = tmp("hub-slow");
    await writeV3Dataset(dir, { episodes: 5, frames: 120 });
    const sha = hub.addDataset({ repo: "lab/slow", files: filesOf(dir), slowMs: 4 });
    const snapshot = path.join(evaluationCacheDir(env()), "hub/lab/slow", sha);
    const partials = () => (fs.existsSync(snapshot) ? fs.readdirSync(snapshot, { recursive: true }).map(String).filter((f) => f.includes(".partial-")) : []);
    const { evaluationId, jobId } = await startExternalEvaluation(db, { actor: operator, input: { source: { kind: "hub", repo: "lab/slow" }, metrics: ["t"] }, settings: settings() });
    await waitFor(async () => partials().length > 0, { timeoutMs: 30_000, what: "a file to be under way" });
    await cancelJob(db, { actor: operator, jobId });
    expect((await finished(evaluationId)).status).toBe("cancelled");
    expect(partials()).toEqual([]);
    // What is there is whole: info.json, and no parquet file cut short.
    const held = fs.readdirSync(snapshot, { recursive: true }).map(String).filter((f) => f.endsWith(".parquet"));
    for (const f of held) expect(fs.readFileSync(path.join(snapshot, f)).equals(filesOf(dir)[f.split(path.sep).join("/")]), f).toBe(true);

    // A half-file a killed worker left long ago is cleared by the next fetch, which completes the snapshot.
    const leftover = path.join(snapshot, "data", `orphan.parquet.partial-000000000000`);
    fs.mkdirSync(path.dirname(leftover), { recursive: true });
    fs.writeFileSync(leftover, "cut");
    fs.utimesSync(leftover, new Date(Date.now() - 7_200_000), new Date(Date.now() - 7_200_000));
    const again = await finished((await startExternalEvaluation(db, { actor: operator, input: { source: { kind: "hub", repo: "lab/slow" }, metrics: ["t"] }, settings: settings() })).evaluationId);
    expect(again.status, again.error ?? "").toBe("succeeded");
    expect(partials()).toEqual([]);
  });

  it("keeps the cache under its size, removing the snapshots used longest ago", async () => {
    const cache = tmp("cache");
    const make = (name: string, bytes: number, ageS: number) => {
      const dir = path.join(cache, "hub/lab", name, "a".repeat(40));
      fs.mkdirSync(path.join(dir, "data"), { recursive: true });
      fs.writeFileSync(path.join(dir, "data/x.parquet"), Buffer.alloc(bytes));
      const at = new Date(Date.now() - ageS * 1000);
      fs.utimesSync(dir, at, at);
      return dir;
    };
    const oldest = make("old", 1000, 300);
    const middle = make("mid", 1000, 200);
    const current = make("cur", 1000, 400);
    expect(await pruneCache(cache, { keep: current, maxBytes: 2000 })).toEqual([oldest]);
    expect(fs.existsSync(middle) && fs.existsSync(current)).toBe(true);
  });
});
