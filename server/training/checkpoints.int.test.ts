import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { buildMlp } from "../../tests/helpers/onnx-models";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { addTestedTarget, datasetWithBuild, makeGpuHost, trainerControl } from "../../tests/helpers/training";
import { buildAgent, runAgent, startTestPortal, tempDir, type TestPortal } from "../../agent/test-helpers";
import { startWorker, type StartedWorker } from "../../worker/worker";
import { createApiToken } from "../auth/tokens.service";
import type { OrgActor } from "../auth/roles";
import { getRun, startRun } from "./runs.service";
import { requestCheckpointPull } from "./checkpoints.service";

// What a run leaves besides its last checkpoint: the target's export command turns it into an
// ONNX version that is validated like any upload; any earlier checkpoint comes home on
// request; and the agent pulls a checkpoint down through the portal. A real sshd stands in for
// the GPU host, with the stand-in trainer and a stand-in export script on its PATH.

let database: TestDatabase;
let db: Db;
let rig: SshdRig;
let worker: StartedWorker;
let actor: OrgActor;
let portal: TestPortal;
let token: string;
let blobDir: string;

const EXPORT_SCRIPT = `#!/bin/bash
# Stand-in for a team's export script: reads a LeRobot checkpoint folder, writes ONNX.
ckpt="$1"; out="$2"
[ -f "$ckpt/config.json" ] && [ -f "$ckpt/model.safetensors" ] || { echo "no LeRobot checkpoint at $ckpt" >&2; exit 3; }
here="$(dirname "$(readlink -f "$0")")/.."
if [ -f "$here/control/export-fail" ]; then echo "torch.onnx.export: Unsupported ONNX opset for aten::scaled_dot_product_attention" >&2; exit 5; fi
cp "$here/export-model.onnx" "$out"
echo "exported $ckpt to $out"
`;

beforeAll(async () => {
  buildAgent();
  database = await createTestDatabase("trainckpt");
  db = createDb(database.url, 4);
  rig = await startSshdRig(1, { names: ["gpu-host"] });
  const host = rig.devices[0];
  makeGpuHost(host);
  fs.writeFileSync(path.join(host.dir, "bin", "gantry-export"), EXPORT_SCRIPT, { mode: 0o755 });
  fs.writeFileSync(path.join(host.dir, "export-model.onnx"), buildMlp());
  actor = (await createOrgWithMember(db, "admin")).actor;
  await addTestedTarget(db, actor, rig, host, { exportCommand: "gantry-export {checkpoint} {onnx}" });
  blobDir = env().BLOB_DIR;
  worker = await startWorker({ url: database.url, concurrency: 2, log: () => {} });
  token = (await createApiToken(db, { actor, input: { name: "robot", scopes: ["read"] } })).token;
  portal = await startTestPortal({ DATABASE_URL: database.url, GANTRY_HOME: tempDir("portal-home"), BLOB_DIR: blobDir });
}, 120_000);

afterAll(async () => {
  await portal?.stop();
  await worker?.stop();
  await rig?.stop();
  await db?.$disconnect();
  await database?.drop();
});

const runOf = (runId: string) => db.trainingRun.findUniqueOrThrow({ where: { id: runId } });
const ended = (runId: string) =>
  waitFor(async () => {
    const r = await runOf(runId);
    return ["succeeded", "failed", "cancelled", "lost"].includes(r.status) && r;
  }, { timeoutMs: 90_000, what: `run ${runId} to end` });
const sha256 = (bytes: Buffer) => crypto.createHash("sha256").update(bytes).digest("hex");

describe("a run's checkpoints", { timeout: 180_000 }, () => {
  let runId: string;
  let repoId: string;

  it("exports the final checkpoint to ONNX on the host, and the ONNX is validated like any upload", async () => {
    trainerControl(rig.devices[0], "export-fail", null);
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    repoId = dataset.repoId;
    ({ runId } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 60, saveFreq: 20, logFreq: 10 } }));
    const run = await ended(runId);
    expect(run, run.error ?? "").toMatchObject({ status: "succeeded", exportError: null });
    expect(run.exportVersionId).toBeTruthy();

    const onnx = await waitFor(async () => {
      const v = await db.modelVersion.findUniqueOrThrow({ where: { id: run.exportVersionId! } });
      return v.status !== "validating" && v;
    }, { timeoutMs: 60_000, what: "the exported ONNX to be validated" });
    expect(onnx).toMatchObject({ kind: "onnx", status: "ready", sha256: sha256(buildMlp()), trainingRunId: runId });
    expect(onnx.source).toMatchObject({ kind: "training", runId, step: 60 });
    const checkpoint = await db.modelVersion.findUniqueOrThrow({ where: { id: run.checkpointVersionId! } });
    expect(onnx.modelId).toBe(checkpoint.modelId);

    const detail = await getRun(db, { orgId: actor.orgId, runId });
    expect(detail.exportVersion).toMatchObject({ id: onnx.id, status: "ready" });
    expect(detail.checkpoints.map((c) => [c.step, c.onHost, c.version?.id ?? null])).toEqual([
      [20, true, null],
      [40, true, null],
      [60, true, checkpoint.id],
    ]);
  });

  it("brings an earlier checkpoint home on request, once, and refuses a step the host does not hold", async () => {
    const { jobId } = await requestCheckpointPull(db, { actor, runId, step: 20 });
    expect(jobId).toBeTruthy();
    // Asked again while it is on its way: the same job, not a second one.
    expect((await requestCheckpointPull(db, { actor, runId, step: 20 })).jobId).toBe(jobId);
    const job = await waitFor(async () => {
      const j = await db.job.findUniqueOrThrow({ where: { id: jobId! } });
      return ["succeeded", "failed"].includes(j.status) && j;
    }, { timeoutMs: 60_000, what: "the pull to end" });
    expect(job.status, job.error ?? "").toBe("succeeded");

    const detail = await getRun(db, { orgId: actor.orgId, runId });
    const twenty = detail.checkpoints.find((c) => c.step === 20)!;
    expect(twenty.version).not.toBeNull();
    const version = await db.modelVersion.findUniqueOrThrow({ where: { id: twenty.version!.id } });
    expect(version).toMatchObject({ kind: "lerobot-checkpoint", status: "ready", source: expect.objectContaining({ step: 20 }) });
    // The files are the host's, byte for byte.
    const hostModel = path.join((await runOf(runId)).outputDir!, "checkpoints", "000020", "pretrained_model");
    const files = version.files as { path: string; sha256: string }[];
    expect(files.map((f) => f.path).sort()).toEqual(fs.readdirSync(hostModel).sort());
    for (const f of files) expect(f.sha256).toBe(sha256(fs.readFileSync(path.join(hostModel, f.path))));

    // Home already: the version, no job.
    expect(await requestCheckpointPull(db, { actor, runId, step: 20 })).toEqual({ jobId: null, versionId: version.id });
    await expect(requestCheckpointPull(db, { actor, runId, step: 50 })).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("20, 40, 60") });
  });

  it("leaves the run succeeded with its checkpoint home when the export fails, and says why", async () => {
    trainerControl(rig.devices[0], "export-fail", "1");
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId: failing } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 20, saveFreq: 20, logFreq: 10 } });
    const run = await ended(failing);
    trainerControl(rig.devices[0], "export-fail", null);
    expect(run, run.error ?? "").toMatchObject({ status: "succeeded", exportVersionId: null });
    expect(run.checkpointVersionId).toBeTruthy();
    expect(run.exportError).toMatch(/exited with code 5.*\n.*Unsupported ONNX opset/s);
  });

  it("gantry-agent pull-model downloads the checkpoint through the portal, checked, and goes on from a partial file", async () => {
    const home = tempDir("agent-home");
    expect((await runAgent(["login", "--portal", portal.url, "--token", token], { home })).code).toBe(0);
    const dir = path.join(tempDir("models"), "pick");
    const first = await runAgent(["pull-model", repoId, "--dir", dir, "--json"], { home });
    expect(first.code, first.stderr).toBe(0);
    const result = JSON.parse(first.stdout.trim().split("\n").pop()!);
    const run = await runOf(runId);
    const version = await db.modelVersion.findUniqueOrThrow({ where: { id: run.checkpointVersionId! } });
    const files = version.files as { path: string; sha256: string; bytes: number }[];
    expect(result).toMatchObject({ dir, run: { id: runId, step: 60 }, files: files.length });
    for (const f of files) expect(sha256(fs.readFileSync(path.join(dir, f.path)))).toBe(f.sha256);
    expect(fs.existsSync(path.join(dir, "training_state"))).toBe(false);

    // A download cut off half-way: only the missing bytes come over the wire.
    const big = files.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    const whole = fs.readFileSync(path.join(dir, big.path));
    fs.rmSync(path.join(dir, big.path));
    fs.writeFileSync(path.join(dir, `${big.path}.part`), whole.subarray(0, Math.floor(whole.length / 2)));
    const again = await runAgent(["pull-model", runId, "--dir", dir, "--json"], { home });
    expect(again.code, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout.trim().split("\n").pop()!);
    expect(second.fetchedBytes).toBe(whole.length - Math.floor(whole.length / 2));
    expect(second.skipped).toHaveLength(files.length - 1);
    expect(sha256(fs.readFileSync(path.join(dir, big.path)))).toBe(big.sha256);

    // A corrupted partial file is caught by its sum and removed, never put in place.
    fs.rmSync(path.join(dir, big.path));
    fs.writeFileSync(path.join(dir, `${big.path}.part`), Buffer.alloc(Math.floor(whole.length / 2), 7));
    const corrupt = await runAgent(["pull-model", runId, "--dir", dir], { home });
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(/arrived with sha256 .* not the .* the portal stated/);
    expect(fs.existsSync(path.join(dir, big.path))).toBe(false);
    expect(fs.existsSync(path.join(dir, `${big.path}.part`))).toBe(false);

    // Names the portal does not know, and no token, are said plainly.
    const unknown = await runAgent(["pull-model", "lab/never-trained", "--dir", dir], { home });
    expect(unknown.stderr).toMatch(/No dataset lab\/never-trained in this organisation/);
  });

  it("serves a version's file with Range to a token holder of its organisation only", async () => {
    const run = await runOf(runId);
    const manifest = await (await fetch(`${portal.url}/api/edge/models/${runId}`, { headers: { authorization: `Bearer ${token}` } })).json();
    const file = manifest.files[0];
    const part = await fetch(`${portal.url}${file.url}`, { headers: { authorization: `Bearer ${token}`, range: "bytes=2-5" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 2-5/${file.bytes}`);
    expect((await part.arrayBuffer()).byteLength).toBe(4);
    expect((await fetch(`${portal.url}${file.url}`)).status).toBe(401);

    const other = (await createOrgWithMember(db, "admin")).actor;
    const otherToken = (await createApiToken(db, { actor: other, input: { name: "other", scopes: ["read"] } })).token;
    const foreign = await fetch(`${portal.url}${file.url}`, { headers: { authorization: `Bearer ${otherToken}` } });
    expect(foreign.status).toBe(404);
    expect((await fetch(`${portal.url}/api/edge/models/${run.id}`, { headers: { authorization: `Bearer ${otherToken}` } })).status).toBe(404);
    expect((await fetch(`${portal.url}/api/models/versions/${run.checkpointVersionId}/files/..%2F..%2Fetc%2Fpasswd`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
  });
});
