import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { datasetWithBuild, makeGpuHost, trainerControl } from "../../tests/helpers/training";
import { startWorker, type StartedWorker } from "../../worker/worker";
import type { OrgActor } from "../auth/roles";
import { cancelRun, getRun, startRun } from "./runs.service";
import { createTarget, testTarget } from "./targets.service";

// Training through the earlier cloud API: a small HTTP server here plays the service (it starts
// the stand-in lerobot-train into the output folder it is given, and answers TRAINING,
// COMPLETED or FAILED, or stays stuck at TRAINING when told to); the model directory is on a
// real sshd of the rig, as it would be on the service's host.

// A status stuck at TRAINING is given 2 s after the final checkpoint appears, not 10 min.
process.env.TRAINING_API_STUCK_AFTER_MS = "2000";

const TOKEN = "tx-api-token-0123456789";

interface Transaction {
  id: string;
  body: Record<string, unknown>;
  headers: http.IncomingHttpHeaders;
  child: ChildProcess;
  exit: number | null;
}

let database: TestDatabase;
let db: Db;
let rig: SshdRig;
let worker: StartedWorker;
let actor: OrgActor;
let targetId: string;
let api: http.Server;
let apiUrl: string;
/** How the service answers: honestly, or stuck at TRAINING whatever its trainer did. */
let mode: "honest" | "stuck" = "honest";
const transactions = new Map<string, Transaction>();

function json(res: http.ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

function startApi(): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(res, 401, { detail: "Not authenticated" });
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/api/transactions/start") {
        const body = JSON.parse(raw) as Record<string, unknown>;
        const args = [
          `--dataset.repo_id=${body.repo_id}`, `--dataset.root=${body.dataset_root}`, `--policy.type=${body.policy_type}`, `--output_dir=${body.output_dir}`,
          `--job_name=${body.job_name}`, `--steps=${body.steps}`, `--save_freq=${body.save_freq}`, `--log_freq=${body.log_freq}`,
        ];
        const child = spawn(process.execPath, [path.join(rig.devices[0].dir, "bin", "lerobot-train"), ...args], { stdio: "ignore" });
        const tx: Transaction = { id: `tx-${crypto.randomBytes(4).toString("hex")}`, body, headers: req.headers, child, exit: null };
        child.on("exit", (code) => (tx.exit = code ?? 128));
        transactions.set(tx.id, tx);
        return json(res, 201, { transaction_id: tx.id, status: "TRAINING" });
      }
      const m = /^\/api\/transactions\/([^/]+)$/.exec(req.url ?? "");
      const tx = m && req.method === "GET" ? transactions.get(decodeURIComponent(m[1])) : undefined;
      if (!tx) return json(res, 404, { detail: "Not found" });
      const status = mode === "stuck" || tx.exit === null ? "TRAINING" : tx.exit === 0 ? "COMPLETED" : "FAILED";
      json(res, 200, { status, transaction_id: tx.id, progress: 0.5, message: status === "FAILED" ? `the trainer exited with code ${tx.exit}` : "training", model_path: tx.body.output_dir });
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

beforeAll(async () => {
  database = await createTestDatabase("txapi");
  db = createDb(database.url, 4);
  rig = await startSshdRig(1, { names: ["model-host"] });
  makeGpuHost(rig.devices[0]);
  api = await startApi();
  apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}/api`;
  actor = (await createOrgWithMember(db, "admin")).actor;
  const device = rig.devices[0];
  ({ id: targetId } = await createTarget(db, {
    actor,
    input: {
      name: "cloud-api", kind: "transactions-api", host: device.host, port: device.port, username: device.user,
      credential: { kind: "key", privateKey: rig.privateKey }, workDir: path.join(device.dir, "work"), activate: "",
      commandTemplate: "lerobot-train --output_dir={output}", concurrency: 1, isDefault: false, slurm: null, api: { url: apiUrl, token: TOKEN },
    },
  }));
  await testTarget(db, { actor, targetId });
  worker = await startWorker({ url: database.url, concurrency: 2, log: () => {} });
}, 60_000);

afterAll(async () => {
  for (const tx of transactions.values()) tx.child.kill("SIGKILL");
  await worker?.stop();
  await new Promise((r) => api?.close(r));
  await rig?.stop();
  await db?.$disconnect();
  await database?.drop();
});

const control = (name: string, value: string | null) => trainerControl(rig.devices[0], name, value);
const resetControls = () => ["train-pace-ms", "train-stop-at", "train-exit", "train-hang"].forEach((n) => control(n, null));
const runOf = (runId: string) => db.trainingRun.findUniqueOrThrow({ where: { id: runId } });
const ended = (runId: string, timeoutMs = 60_000) =>
  waitFor(async () => {
    const r = await runOf(runId);
    return ["succeeded", "failed", "cancelled", "lost"].includes(r.status) && r;
  }, { timeoutMs, intervalMs: 100, what: `run ${runId} to end` });
const messagesOf = async (jobId: string) => (await db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } })).map((e) => e.message).join("\n");
const start = async (steps: number) => {
  const dataset = await datasetWithBuild(db, env(), actor.orgId);
  return startRun(db, { actor, input: { datasetId: dataset.id, targetId, policyType: "act", steps, saveFreq: 20, logFreq: 10 } });
};

describe("testing a transactions-api target", () => {
  it("asks the API, with the token, and says when it does not answer or refuses the token", async () => {
    expect((await db.trainingTarget.findUniqueOrThrow({ where: { id: targetId } })).facts).toMatchObject({ problems: [] });
    const device = rig.devices[0];
    const input = (name: string, url: string, token: string) => ({
      name, kind: "transactions-api" as const, host: device.host, port: device.port, username: device.user,
      credential: { kind: "key" as const, privateKey: rig.privateKey }, workDir: path.join(device.dir, "work"), activate: "",
      commandTemplate: "lerobot-train --output_dir={output}", concurrency: 1, isDefault: false, slurm: null, api: { url, token },
    });
    const closed = await createTarget(db, { actor, input: input("api-closed", "http://127.0.0.1:9/api", TOKEN) });
    expect((await testTarget(db, { actor, targetId: closed.id })).problems).toEqual([expect.stringMatching(/^The transactions API at http:\/\/127\.0\.0\.1:9\/api does not answer/)]);
    const wrongToken = await createTarget(db, { actor, input: input("api-wrong-token", apiUrl, "not-the-token") });
    expect((await testTarget(db, { actor, targetId: wrongToken.id })).problems).toEqual([expect.stringMatching(/refused the token \(HTTP 401\)/)]);
  });
});

describe("training through the transactions API", () => {
  it("starts a transaction with the synced dataset, follows it to COMPLETED and registers the final checkpoint from the model directory", { timeout: 90_000 }, async () => {
    resetControls();
    mode = "honest";
    const { runId, jobId } = await start(40);
    const run = await ended(runId);
    expect(run, run.error ?? "").toMatchObject({ status: "succeeded", apiStatus: "COMPLETED", lastStep: 40 });
    const tx = transactions.get(run.transactionId!)!;
    expect(tx.headers["idempotency-key"]).toBe(`gantry-run-${runId}-1`);
    expect(tx.body).toMatchObject({ policy_type: "act", steps: 40, save_freq: 20, output_dir: run.outputDir, resume: false, client_ref: `gantry-run-${runId}-1` });
    expect(tx.exit).toBe(0);
    const version = await db.modelVersion.findUniqueOrThrow({ where: { id: run.checkpointVersionId! } });
    expect(version).toMatchObject({ kind: "lerobot-checkpoint", trainingRunId: runId, source: expect.objectContaining({ step: 40, target: "cloud-api" }) });
    expect(await messagesOf(jobId)).toMatch(new RegExp(`Started as transaction ${run.transactionId}[\\s\\S]*Transaction ${run.transactionId}: COMPLETED`));
    expect((await getRun(db, { orgId: actor.orgId, runId })).transaction).toEqual({ id: run.transactionId, status: "COMPLETED" });
  });

  it("takes completion from the folder when the status stays at TRAINING after the final checkpoint appeared", { timeout: 90_000 }, async () => {
    resetControls();
    mode = "stuck";
    const { runId, jobId } = await start(40);
    const run = await ended(runId);
    mode = "honest";
    expect(run, run.error ?? "").toMatchObject({ status: "succeeded", apiStatus: "TRAINING", lastStep: 40 });
    expect(run.finalCheckpointSeenAt).not.toBeNull();
    expect(await messagesOf(jobId)).toMatch(/The final checkpoint \(step 40\) is in .*; waiting for the API to say COMPLETED[\s\S]*still says TRAINING \d+ s after the final checkpoint \(step 40\) appeared/);
  });

  it("never calls a checkpoint short of the final step complete, however long the status stays at TRAINING", { timeout: 90_000 }, async () => {
    resetControls();
    control("train-stop-at", "20");
    mode = "stuck";
    const { runId } = await start(40);
    const tx = await waitFor(async () => {
      const id = (await runOf(runId)).transactionId;
      const t = id ? transactions.get(id) : undefined;
      return t && t.exit !== null && t;
    }, { timeoutMs: 60_000, what: "the trainer to stop at step 20" });
    expect(tx.exit).toBe(0);
    // Twice the time a final checkpoint would be given: still following.
    await new Promise((r) => setTimeout(r, 4500));
    expect(await runOf(runId)).toMatchObject({ status: "running", apiStatus: "TRAINING", finalCheckpointSeenAt: null, checkpointVersionId: null });
    await cancelRun(db, { actor, runId });
    const run = await ended(runId);
    mode = "honest";
    resetControls();
    expect(run.status).toBe("cancelled");
    expect(run.error).toMatch(/stopped following transaction tx-.*no way to cancel a transaction/);
  });

  it("does not believe COMPLETED when the last checkpoint is short of the final step", { timeout: 90_000 }, async () => {
    resetControls();
    control("train-stop-at", "20");
    mode = "honest";
    const { runId } = await start(40);
    const run = await ended(runId);
    resetControls();
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/says transaction tx-\S+ COMPLETED, but checkpoints\/last in .* is at step 20 of 40; it is not called complete/);
    expect(run.checkpointVersionId).toBeNull();
  });

  it("ends a FAILED transaction failed, with the API's message", { timeout: 90_000 }, async () => {
    resetControls();
    control("train-exit", "3");
    mode = "honest";
    const { runId } = await start(20);
    const run = await ended(runId);
    resetControls();
    expect(run).toMatchObject({ status: "failed", apiStatus: "FAILED" });
    expect(run.error).toMatch(/says transaction tx-\S+ FAILED: the trainer exited with code 3/);
  });
});
