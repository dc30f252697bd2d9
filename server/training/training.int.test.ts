import type { ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { startWorkerProcess } from "../../tests/helpers/worker-process";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { addTestedTarget, datasetWithBuild, isTrainerAlive, makeGpuHost, trainerControl } from "../../tests/helpers/training";
import { startWorker, type StartedWorker } from "../../worker/worker";
import { blobStore } from "../storage/blobs";
import type { OrgActor } from "../auth/roles";
import { cancelRun, endRunOfJob, getRun, readRunLog, readRunMetrics, restartRun, startRun } from "./runs.service";
import { testTarget } from "./targets.service";
import { connectTrainingHost } from "./host";
import { listCheckpoint } from "./checkpoint.service";
import { startCompatTraining } from "./compat.service";
import { readCompatStatus } from "../edge/episodes.service";
import { RealtimeHub } from "../jobs/realtime";
import { openRunLogStream, type LogPiece } from "./log-stream";

// Training against a simulated GPU host: a real OpenSSH sshd on 127.0.0.1 whose PATH holds the
// stand-in lerobot-train (LeRobot's log lines and checkpoint layout) and nvidia-smi. A database
// of its own, and its own workers, in process or as real processes killed by signal.

let database: TestDatabase;
let db: Db;
let rig: SshdRig;
let worker: StartedWorker | null = null;
let actor: OrgActor;
let targetId: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  database = await createTestDatabase("training");
  db = createDb(database.url, 4);
  rig = await startSshdRig(1, { names: ["gpu-host"] });
  makeGpuHost(rig.devices[0]);
  actor = (await createOrgWithMember(db, "admin")).actor;
  targetId = (await addTestedTarget(db, actor, rig, rig.devices[0])).id;
}, 60_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await worker?.stop();
  await rig?.stop();
  await db?.$disconnect();
  await database?.drop();
});

const device = () => rig.devices[0];
const control = (name: string, value: string | null) => trainerControl(device(), name, value);
const resetControls = () => ["train-pace-ms", "train-stop-at", "train-exit", "train-hang", "train-ignore-term", "train-spam-kb", "train-hold"].forEach((n) => control(n, null));

async function inProcessWorker() {
  worker ??= await startWorker({ url: database.url, concurrency: 2, log: () => {} });
}
async function stopInProcessWorker() {
  await worker?.stop();
  worker = null;
}

const runOf = (runId: string) => db.trainingRun.findUniqueOrThrow({ where: { id: runId } });
const ended = (runId: string, timeoutMs = 60_000) =>
  waitFor(async () => {
    const r = await runOf(runId);
    return ["succeeded", "failed", "cancelled", "lost"].includes(r.status) && r;
  }, { timeoutMs, what: `run ${runId} to end` });

/** The whole stored log of an attempt, in order. */
async function storedLog(runId: string, attempt = 1) {
  const chunks = await db.trainingLogChunk.findMany({ where: { runId, attempt }, orderBy: { offset: "asc" } });
  let at = 0;
  for (const c of chunks) {
    expect(Number(c.offset), "no gap and no overlap between stored pieces").toBe(at);
    at += Buffer.byteLength(c.text);
  }
  return chunks.map((c) => c.text).join("");
}
const hostLog = async (runId: string, attempt = 1) => fs.readFileSync(path.join((await runOf(runId)).runDir!, `attempt-${attempt}`, "train.log"), "utf8");
const trainerAlive = isTrainerAlive;

describe("training targets", () => {
  it("pins the host key on first test and reads the GPU, Python and LeRobot", async () => {
    const target = await db.trainingTarget.findUniqueOrThrow({ where: { id: targetId } });
    expect(target.pinnedHostKey).toBe(device().fingerprint());
    expect(target.facts).toMatchObject({ gpus: [{ name: "NVIDIA GeForce RTX 4090", memoryMiB: 24564, driver: "550.54.14" }], lerobot: "0.4.1", problems: [] });
    expect(JSON.stringify(target.facts)).not.toContain("BEGIN OPENSSH");
  });
});

describe("a training run", { timeout: 180_000 }, () => {
  it("syncs the dataset, trains detached, follows the log and metrics, and registers the final checkpoint", { timeout: 120_000 }, async () => {
    resetControls();
    await inProcessWorker();
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 60, saveFreq: 20, logFreq: 10, extraArgs: "--policy.n_action_steps=10 \"--wandb.notes=it's fine\"" } });
    const run = await ended(runId);
    expect(run, run.error ?? "").toMatchObject({ status: "succeeded", exitCode: 0, lastStep: 60 });

    // The log, exactly as the host wrote it, and LeRobot's periodic lines as metrics at exact steps.
    expect(await storedLog(runId)).toBe(await hostLog(runId));
    const metrics = await readRunMetrics(db, { orgId: actor.orgId, runId });
    expect(metrics.train.map((m) => m.step)).toEqual([10, 20, 30, 40, 50, 60]);
    expect(metrics.train[0].values).toMatchObject({ loss: 0.632, lr: 1e-5 });
    expect(metrics.gpu[0]?.values).toMatchObject({ util: 87, mem_used_mib: 10240 });
    const log = await readRunLog(db, { orgId: actor.orgId, input: { runId, after: -1, limit: 500 } });
    expect(log.chunks.map((c) => c.text).join("")).toMatch(/step:60 smpl:480/);

    // The host saw a LeRobot folder built from the cache, and the quoted extra arguments.
    const version = await db.modelVersion.findUniqueOrThrow({ where: { id: run.checkpointVersionId! }, include: { model: true } });
    expect(version).toMatchObject({ kind: "lerobot-checkpoint", status: "ready", trainingRunId: runId });
    const files = version.files as { path: string; sha256: string; bytes: number }[];
    expect(files.map((f) => f.path).sort()).toEqual(["config.json", "model.safetensors", "policy_preprocessor.json", "train_config.json"]);
    for (const f of files) {
      const stored = await blobStore().get(f.sha256);
      const chunks: Buffer[] = [];
      for await (const c of stored) chunks.push(c as Buffer);
      expect(crypto.createHash("sha256").update(Buffer.concat(chunks)).digest("hex")).toBe(f.sha256);
    }
    const trainSh = fs.readFileSync(path.join(run.runDir!, "attempt-1", "train.sh"), "utf8");
    expect(trainSh).toContain(`'--wandb.notes=it'\\''s fine'`);
    const detail = await getRun(db, { orgId: actor.orgId, runId });
    expect(detail.checkpointVersion).toMatchObject({ modelName: version.model.name, number: version.number });

    // A second run of the same dataset sends nothing: the host's cache has every file.
    const again = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "diffusion", steps: 10, saveFreq: 10, logFreq: 5 } });
    expect((await ended(again.runId)).status).toBe("succeeded");
    const events = await db.jobEvent.findMany({ where: { jobId: again.jobId }, orderBy: { seq: "asc" } });
    expect(events.map((e) => e.message).join("\n")).toMatch(/Dataset already on the host: 0 of \d+ files to send/);
  });

  it("is not called complete when it exits 0 with its last checkpoint short of the final step", { timeout: 120_000 }, async () => {
    resetControls();
    control("train-stop-at", "20");
    await inProcessWorker();
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 100, saveFreq: 20, logFreq: 10 } });
    const run = await ended(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/exited 0 but its last checkpoint is at step 20 of 100; it is not called complete/);
    expect(run.checkpointVersionId).toBeNull();
    resetControls();
  });

  it("reports a failing trainer's exit code and last lines", { timeout: 120_000 }, async () => {
    resetControls();
    control("train-exit", "3");
    await inProcessWorker();
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 20, saveFreq: 10, logFreq: 10 } });
    const run = await ended(runId);
    expect(run).toMatchObject({ status: "failed", exitCode: 3 });
    expect(run.error).toMatch(/exited with code 3; the log ends:[\s\S]*End of training/);
    resetControls();
  });

  it("cancels: TERM to the process group, KILL after the grace period, nothing of the run left", { timeout: 120_000 }, async () => {
    resetControls();
    control("train-pace-ms", "200");
    control("train-ignore-term", "1");
    await inProcessWorker();
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 100_000, saveFreq: 50_000, logFreq: 10 } });
    await waitFor(async () => (await runOf(runId)).lastStep !== null, { timeoutMs: 60_000, what: "the run to log a step" }).catch(async (error) => {
      const r = await runOf(runId);
      const events = await db.jobEvent.findMany({ where: { jobId: r.jobId! }, orderBy: { seq: "asc" } });
      throw new Error(`${error.message}: ${r.status} ${r.error} ${r.logOffset} ${r.runDir}\n${events.map((e) => e.message).join("\n")}`);
    });
    expect(trainerAlive(runId)).toBe(true);
    await cancelRun(db, { actor, runId });
    const run = await ended(runId, 30_000);
    expect(run.status).toBe("cancelled");
    expect(trainerAlive(runId)).toBe(false);
    expect(await hostLog(runId)).toMatch(/Received SIGTERM; ignoring it/);
    resetControls();
  });

  it("stops on its host a run that was lost while its process still trained there", { timeout: 120_000 }, async () => {
    resetControls();
    control("train-pace-ms", "200");
    await inProcessWorker();
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId, jobId } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 100_000, saveFreq: 50_000, logFreq: 10 } });
    await waitFor(async () => (await runOf(runId)).lastStep !== null, { timeoutMs: 60_000, what: "the run to log a step" });
    // Its job ended without it, as when its worker died under it every time: the run is lost, training goes on.
    await stopInProcessWorker();
    await db.$executeRaw`SELECT graphile_worker.remove_job(${jobId}::text)`;
    await db.job.update({ where: { id: jobId }, data: { status: "failed", error: "The worker running it stopped answering on every attempt (3)" } });
    await endRunOfJob(db, jobId, "The worker running it stopped answering on every attempt (3)");
    expect(await runOf(runId)).toMatchObject({ status: "lost" });
    expect(trainerAlive(runId)).toBe(true);

    await inProcessWorker();
    await cancelRun(db, { actor, runId });
    const stopped = await waitFor(async () => {
      const r = await runOf(runId);
      return r.status === "cancelled" && r;
    }, { timeoutMs: 60_000, what: "the lost run to be stopped on its host" });
    expect(stopped.error).toMatch(/^Cancelled after it was lost: The worker running it stopped answering/);
    expect(trainerAlive(runId)).toBe(false);
    resetControls();
  });

  it("goes on through a worker killed by signal: training continues, the next worker re-attaches, the log has no gap and no repeated line", async () => {
    resetControls();
    control("train-pace-ms", "400");
    await stopInProcessWorker();
    const startChild = () => startWorkerProcess(database.url, { tracked: children });
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const first = startChild();
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 200, saveFreq: 100, logFreq: 10 } });
    await waitFor(async () => ((await runOf(runId)).lastStep ?? 0) >= 30, { timeoutMs: 60_000, what: "the run to reach step 30" });
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));
    // Training goes on with no worker at all.
    const before = (await hostLog(runId)).length;
    await waitFor(async () => (await hostLog(runId)).length > before, { timeoutMs: 20_000, what: "the log to grow with no worker" });
    expect(trainerAlive(runId)).toBe(true);

    const second = startChild();
    const run = await ended(runId, 90_000);
    expect(run.status, `${run.error}\n${second.output()}`).toBe("succeeded");
    const stored = await storedLog(runId);
    expect(stored).toBe(await hostLog(runId));
    const steps = [...stored.matchAll(/ step:(\d+) /g)].map((m) => Number(m[1]));
    expect(steps).toEqual(Array.from({ length: 20 }, (_, i) => (i + 1) * 10));
    const metrics = await readRunMetrics(db, { orgId: actor.orgId, runId });
    expect(metrics.train.map((m) => m.step)).toEqual(steps);
    second.child.kill("SIGTERM");
    await new Promise((r) => second.child.once("exit", r));
    resetControls();
  }, 150_000);

  it("ends lost, saying why, when the process is killed outright on the host; resume goes on from its last checkpoint", async () => {
    resetControls();
    control("train-pace-ms", "1000");
    await inProcessWorker();
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 100, saveFreq: 20, logFreq: 10 } });
    await waitFor(async () => ((await runOf(runId)).lastStep ?? 0) >= 40, { timeoutMs: 60_000, what: "the run to reach step 40" });
    // kill -9 of the run's whole process group, as the OOM killer or a person would.
    const pid = Number(fs.readFileSync(path.join((await runOf(runId)).runDir!, "attempt-1", "pid"), "utf8"));
    process.kill(-pid, "SIGKILL");
    const run = await ended(runId);
    expect(run.status).toBe("lost");
    expect(run.error).toMatch(/is gone and left no exit code/);

    resetControls();
    await restartRun(db, { actor, runId, mode: "resume" });
    const resumed = await ended(runId);
    expect(resumed, resumed.error ?? "").toMatchObject({ status: "succeeded", attempt: 2, lastStep: 100 });
    expect(await hostLog(runId, 2)).toMatch(/Resuming from step [2-9]0/);
  }, 120_000);
});

describe("the earlier edge clients", () => {
  it("start training with POST /edge/train and read TRAINING, then COMPLETED with the checkpoint, never a credential", { timeout: 120_000 }, async () => {
    resetControls();
    await inProcessWorker();
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    await db.episode.create({ data: { orgId: actor.orgId, datasetId: dataset.id, number: 0, mode: "edge", status: "ready", task: "pick", length: 10 } });
    const started = await startCompatTraining(db, { actor, repoId: dataset.repoId, input: { policy_type: "act", steps: 20, save_freq: 10, log_freq: 10 } });
    expect(started).toMatchObject({ status: "TRAINING", transaction_id: expect.any(String) });
    const during = await readCompatStatus(db, { actor, repoId: dataset.repoId });
    expect(during).toMatchObject({ status: "TRAINING", transaction_id: started.transaction_id });
    expect((await ended(started.transaction_id)).status).toBe("succeeded");
    const done = await readCompatStatus(db, { actor, repoId: dataset.repoId });
    expect(done).toMatchObject({ status: "COMPLETED", transaction_id: started.transaction_id, progress: 1, model_path: expect.stringMatching(/\/v1$/) });
    expect(JSON.stringify(done)).not.toMatch(/password|ssh_|BEGIN|credential/i);
    await expect(startCompatTraining(db, { actor, repoId: "lab/none-such", input: {} })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

describe("bad input on the host", { timeout: 120_000 }, () => {
  it("refuses a checkpoint folder with a link that leads out of it", async () => {
    const dir = path.join(device().dir, "work", "evil-checkpoint");
    fs.mkdirSync(path.join(dir, "pretrained_model"), { recursive: true });
    fs.writeFileSync(path.join(dir, "pretrained_model", "config.json"), "{}");
    fs.symlinkSync("/etc/passwd", path.join(dir, "pretrained_model", "model.safetensors"));
    const target = await db.trainingTarget.findUniqueOrThrow({ where: { id: targetId } });
    const session = await connectTrainingHost(target);
    try {
      await expect(listCheckpoint(session, dir)).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/holds a link/) });
    } finally {
      session.close();
    }
  });

  it("refuses a target whose host key changed, before sending anything", async () => {
    const other = await startSshdRig(1);
    try {
      makeGpuHost(other.devices[0]);
      const { id } = await addTestedTarget(db, actor, other, other.devices[0]);
      await other.devices[0].changeHostKey();
      await expect(testTarget(db, { actor, targetId: id })).rejects.toMatchObject({ message: expect.stringMatching(/host key of .* has changed/) });
    } finally {
      await other.stop();
    }
  });
});

describe("runs on one target", { timeout: 150_000 }, () => {
  it("train as many at once as the target allows (one per GPU); the others wait their turn", async () => {
    resetControls();
    control("train-hold", "10");
    // A worker with room for more jobs than the target allows, so only the target's limit holds runs back.
    const roomy = await startWorker({ url: database.url, concurrency: 4, log: () => {} });
    try {
      const { id } = await addTestedTarget(db, actor, rig, device(), { name: `two-gpus-${crypto.randomBytes(2).toString("hex")}`, concurrency: 2 });
      const dataset = await datasetWithBuild(db, env(), actor.orgId);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await startRun(db, { actor, input: { datasetId: dataset.id, targetId: id, policyType: "act", steps: 20, saveFreq: 20, logFreq: 10 } })).runId);
      const holding = await waitFor(async () => {
        const rows = await Promise.all(ids.map(runOf));
        return rows.filter((r) => (r.lastStep ?? 0) >= 10).length === 2 && rows;
      }, { timeoutMs: 60_000, what: "two runs to train at once" });
      const waiting = holding.filter((r) => (r.lastStep ?? 0) < 10);
      expect(waiting).toHaveLength(1);
      expect(waiting[0].status).toBe("queued");
      expect(waiting[0].runDir, "the third has not started on the host").toBeNull();
      expect(new Set(holding.filter((r) => r !== waiting[0]).map((r) => r.queueSlot)).size).toBe(2);

      control("train-hold", null);
      for (const runId of ids) {
        const r = await ended(runId, 90_000);
        expect(r.status, r.error ?? "").toBe("succeeded");
      }
    } finally {
      control("train-hold", null);
      await roomy.stop();
    }
  });
});

describe("a run's log as a stream", { timeout: 120_000 }, () => {
  it("replays what was stored, delivers each new piece as it is stored, and ends after the run's last line", async () => {
    resetControls();
    control("train-hold", "20");
    await inProcessWorker();
    const hub = new RealtimeHub({ url: database.url, db, jobEvents: false });
    try {
      const dataset = await datasetWithBuild(db, env(), actor.orgId);
      const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, policyType: "act", steps: 40, saveFreq: 20, logFreq: 10 } });
      await waitFor(async () => ((await runOf(runId)).lastStep ?? 0) >= 20, { timeoutMs: 60_000, what: "the run to reach step 20" });

      // A follower that joins late gets the start of the log first, then goes on live.
      const controller = new AbortController();
      const pieces: LogPiece[] = [];
      const stream = await openRunLogStream({ db, hub, orgId: actor.orgId, runId, after: -1, signal: controller.signal });
      const reading = (async () => {
        for await (const piece of stream) pieces.push(piece);
      })();
      await waitFor(async () => pieces.map((p) => p.text).join("").includes("step:20 "), { timeoutMs: 10_000, what: "the stored lines to be replayed" });
      expect(pieces.map((p) => p.text).join("")).not.toContain("step:30 ");
      control("train-hold", null);
      await reading; // ends by itself once the run has ended and its last piece was sent
      const run = await runOf(runId);
      expect(run.status, run.error ?? "").toBe("succeeded");
      expect(pieces.map((p) => p.text).join("")).toBe(await storedLog(runId));
      expect(pieces.map((p) => p.offset)).toEqual([...pieces.map((p) => p.offset)].sort((a, b) => a - b));

      // Resumed from a piece's offset: only what came after it.
      const from = pieces[Math.floor(pieces.length / 2)];
      const rest: LogPiece[] = [];
      for await (const piece of await openRunLogStream({ db, hub, orgId: actor.orgId, runId, after: from.offset, signal: new AbortController().signal })) rest.push(piece);
      expect(rest.map((p) => p.offset)).toEqual(pieces.filter((p) => p.offset > from.offset).map((p) => p.offset));

      // Another organisation's follower is refused before anything is read.
      const other = (await createOrgWithMember(db, "viewer")).actor;
      await expect(openRunLogStream({ db, hub, orgId: other.orgId, runId, after: -1, signal: controller.signal })).rejects.toMatchObject({ code: "NOT_FOUND" });
    } finally {
      control("train-hold", null);
      await hub.stop();
    }
  });
});
