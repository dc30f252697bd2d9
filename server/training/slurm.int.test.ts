import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../db";
import { env } from "../env";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { datasetWithBuild, makeGpuHost, trainerControl } from "../../tests/helpers/training";
import { makeSlurmLoginHost, slurmSkipReason, startSlurm, type TestSlurm } from "../../tests/helpers/slurm";
import { startWorker, type StartedWorker } from "../../worker/worker";
import type { OrgActor } from "../auth/roles";
import { cancelRun, getRun, startRun } from "./runs.service";
import { createTarget, testTarget } from "./targets.service";

// Training on a real single-node Slurm (slurmctld, slurmd, munge; slurmdbd when MariaDB
// answers), submitted through a login host that is a real sshd on 127.0.0.1 with the stand-in
// lerobot-train on its PATH. Slurm is started once for this file and stopped after it.

const skip = slurmSkipReason();

let database: TestDatabase;
let db: Db;
let rig: SshdRig;
let slurm: TestSlurm;
let worker: StartedWorker;
let actor: OrgActor;

beforeAll(async () => {
  if (skip) return;
  slurm = await startSlurm();
  database = await createTestDatabase("slurm");
  db = createDb(database.url, 4);
  rig = await startSshdRig(1, { names: ["slurm-login"] });
  makeGpuHost(rig.devices[0]);
  // A login host has no GPU of its own; the jobs' nodes do.
  fs.rmSync(path.join(rig.devices[0].dir, "bin", "nvidia-smi"));
  makeSlurmLoginHost(rig.devices[0], slurm);
  actor = (await createOrgWithMember(db, "admin")).actor;
  worker = await startWorker({ url: database.url, concurrency: 3, log: () => {} });
}, 90_000);

afterAll(async () => {
  await worker?.stop();
  await rig?.stop();
  await slurm?.stop();
  await db?.$disconnect();
  await database?.drop();
}, 60_000);

const device = () => rig.devices[0];
const control = (name: string, value: string | null) => trainerControl(device(), name, value);
const resetControls = () => ["train-pace-ms", "train-stop-at", "train-exit", "train-hang", "train-ignore-term", "train-spam-kb"].forEach((n) => control(n, null));

const TEMPLATE = "lerobot-train --dataset.repo_id={repo_id} --dataset.root={dataset} --policy.type={policy} --output_dir={output} --job_name={name} --policy.device=cuda --policy.push_to_hub=false --steps={steps} --save_freq={save_freq} --log_freq={log_freq}";

async function slurmTarget(slurmSettings: { partition?: string; account?: string; options?: string[] } = {}, commandTemplate = TEMPLATE) {
  const { id } = await createTarget(db, {
    actor,
    input: {
      name: `slurm-${crypto.randomBytes(3).toString("hex")}`,
      kind: "slurm",
      host: device().host,
      port: device().port,
      username: device().user,
      credential: { kind: "key", privateKey: rig.privateKey },
      workDir: path.join(device().dir, "work"),
      activate: "",
      commandTemplate,
      concurrency: 1,
      isDefault: false,
      slurm: { partition: slurmSettings.partition ?? "debug", account: slurmSettings.account ?? "", options: slurmSettings.options ?? ["--time=30", "--cpus-per-task=1"] },
    },
  });
  const facts = await testTarget(db, { actor, targetId: id });
  return { id, facts };
}

const runOf = (runId: string) => db.trainingRun.findUniqueOrThrow({ where: { id: runId } });
const ended = (runId: string, timeoutMs = 60_000) =>
  waitFor(async () => {
    const r = await runOf(runId);
    return ["succeeded", "failed", "cancelled", "lost"].includes(r.status) && r;
  }, { timeoutMs, intervalMs: 100, what: `run ${runId} to end` });
const attemptFile = async (runId: string, file: string) => fs.readFileSync(path.join((await runOf(runId)).runDir!, "attempt-1", file), "utf8");
async function storedLog(runId: string) {
  const chunks = await db.trainingLogChunk.findMany({ where: { runId, attempt: 1 }, orderBy: { offset: "asc" } });
  return chunks.map((c) => c.text).join("");
}
/** Processes whose command line names the run (the batch shell, the trainer). */
const processesOf = (runId: string) => {
  try {
    return execFileSync("pgrep", ["-f", runId], { encoding: "utf8" }).trim();
  } catch {
    return "";
  }
};
const jobState = (jobId: string) => /JobState=(\S+)/.exec(slurm.client("scontrol", ["-o", "show", "job", jobId]))?.[1];

describe.skipIf(!!skip)(`training on Slurm${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("tests a Slurm target: sbatch is found and no GPU is asked of the login host", async () => {
    const { facts } = await slurmTarget();
    expect(facts.sbatch).toMatch(/^slurm(-wlm)? \d+/);
    expect(facts.gpus).toEqual([]);
    expect(facts.problems).toEqual([]);
  });

  it("says when the target's partition is not one the cluster has, naming those it has", async () => {
    const { facts } = await slurmTarget({ partition: "a100-nope" });
    expect(facts.problems).toEqual([expect.stringMatching(/^Slurm has no partition a100-nope; it has .*debug/)]);
  });

  it("submits with sbatch, follows the job to COMPLETED, reads its --output by offset and registers the final checkpoint", { timeout: 120_000 }, async () => {
    resetControls();
    const { id: targetId } = await slurmTarget({ options: ["--time=30", "--cpus-per-task=1", "--comment=gantry test"] });
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId, jobId } = await startRun(db, { actor, input: { datasetId: dataset.id, targetId, policyType: "act", steps: 40, saveFreq: 20, logFreq: 10 } });
    const run = await ended(runId);
    expect(run, run.error ?? "").toMatchObject({ status: "succeeded", exitCode: 0, lastStep: 40, slurmState: "COMPLETED" });
    expect(run.slurmJobId).toMatch(/^\d+$/);
    expect(jobState(run.slurmJobId!)).toBe("COMPLETED");

    // The batch script as submitted: resources, the time-limit signal, the log file.
    const script = await attemptFile(runId, "job.sbatch");
    expect(script).toContain(`#SBATCH --job-name=gantry-run-${runId}-1`);
    expect(script).toContain(`#SBATCH --output=${path.join(run.runDir!, "attempt-1", "train.log")}`);
    expect(script).toContain("#SBATCH --signal=B:USR1@120");
    expect(script).toContain("#SBATCH --partition=debug");
    expect(script).toContain(`#SBATCH --comment="gantry test"`);
    expect(slurm.client("scontrol", ["-o", "show", "job", run.slurmJobId!])).toMatch(/Partition=debug .*Comment=gantry test /);
    expect((await attemptFile(runId, "job_id")).trim()).toBe(run.slurmJobId);
    expect((await attemptFile(runId, "exit_code")).trim()).toBe("0");

    // The log as the job wrote it, and its lines as metrics.
    expect(await storedLog(runId)).toBe(await attemptFile(runId, "train.log"));
    const metrics = await db.trainingMetric.findMany({ where: { runId, kind: "train" }, orderBy: { step: "asc" } });
    expect(metrics.map((m) => m.step)).toEqual([10, 20, 30, 40]);
    const version = await db.modelVersion.findUniqueOrThrow({ where: { id: run.checkpointVersionId! } });
    expect(version).toMatchObject({ kind: "lerobot-checkpoint", status: "ready", trainingRunId: runId, source: expect.objectContaining({ step: 40 }) });
    const events = await db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } });
    expect(events.map((e) => e.message).join("\n")).toMatch(new RegExp(`Submitted to Slurm as job ${run.slurmJobId}[\\s\\S]*Slurm job ${run.slurmJobId}: COMPLETED`));
    expect((await getRun(db, { orgId: actor.orgId, runId })).slurm).toMatchObject({ jobId: run.slurmJobId, state: "COMPLETED", words: "completed" });
  });

  it("shows a pending job as queued on Slurm with its reason, and follows it once it runs", { timeout: 120_000 }, async () => {
    resetControls();
    const { id: targetId } = await slurmTarget({ options: ["--hold"] });
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, targetId, policyType: "act", steps: 20, saveFreq: 10, logFreq: 10 } });
    const pending = await waitFor(async () => {
      const r = await runOf(runId);
      return r.slurmReason === "JobHeldUser" && r;
    }, { timeoutMs: 60_000, what: "the job to be seen held" });
    expect(pending).toMatchObject({ status: "queued", slurmState: "PENDING" });
    expect((await getRun(db, { orgId: actor.orgId, runId })).slurm?.words).toBe("queued on Slurm (JobHeldUser)");
    slurm.client("scontrol", ["release", pending.slurmJobId!]);
    const run = await ended(runId);
    expect(run, run.error ?? "").toMatchObject({ status: "succeeded", slurmState: "COMPLETED" });
  });

  it("ends FAILED with the trainer's exit code and last lines", { timeout: 120_000 }, async () => {
    resetControls();
    control("train-exit", "3");
    const { id: targetId } = await slurmTarget();
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, targetId, policyType: "act", steps: 20, saveFreq: 10, logFreq: 10 } });
    const run = await ended(runId);
    resetControls();
    expect(run).toMatchObject({ status: "failed", exitCode: 3, slurmState: "FAILED" });
    expect(run.error).toMatch(/exited with code 3; the log ends:[\s\S]*End of training/);
    expect(run.checkpointVersionId).toBeNull();
    expect(jobState(run.slurmJobId!)).toBe("FAILED");
  });

  it("cancels with scancel: the job ends CANCELLED, the run cancelled, and nothing of it is left running", { timeout: 120_000 }, async () => {
    resetControls();
    control("train-pace-ms", "200");
    control("train-ignore-term", "1");
    const { id: targetId } = await slurmTarget();
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, targetId, policyType: "act", steps: 100_000, saveFreq: 50_000, logFreq: 10 } });
    await waitFor(async () => (await runOf(runId)).lastStep !== null, { timeoutMs: 60_000, what: "the run to log a step" });
    expect(processesOf(runId)).not.toBe("");
    await cancelRun(db, { actor, runId });
    const run = await ended(runId, 60_000);
    resetControls();
    expect(run).toMatchObject({ status: "cancelled", slurmState: "CANCELLED" });
    expect(jobState(run.slurmJobId!)).toBe("CANCELLED");
    expect(processesOf(runId)).toBe("");
    const log = await attemptFile(runId, "train.log");
    expect(log).toMatch(/\*\*\* JOB \d+ ON \S+ CANCELLED AT/);
    expect(log).toMatch(/Received SIGTERM; ignoring it/);
  });

  it("passes Slurm's time-limit warning (USR1) to the trainer and says so when it ends on it", { timeout: 120_000 }, async () => {
    resetControls();
    control("train-pace-ms", "200");
    // A trainer that ends on USR1, as a Python one without a handler for it does (the stand-in
    // runs on Node, which would open its inspector instead).
    const endsOnUsr1 = `sh -c 'trap "echo Received SIGUSR1 >&2; kill \\$p; exit 138" USR1; "$@" & p=$!; wait $p' trainer ${TEMPLATE}`;
    const { id: targetId } = await slurmTarget({}, endsOnUsr1);
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, targetId, policyType: "act", steps: 100_000, saveFreq: 20, logFreq: 10 } });
    // The stand-in says so once the checkpoint is whole on disk (a step logged is not yet saved).
    await waitFor(async () => /Checkpoint policy after step 20\b/.test(await storedLog(runId)), { timeoutMs: 60_000, what: "the run to save its first checkpoint" });
    // What Slurm does 120 s before --time runs out (--signal=B:USR1@120), sent now.
    slurm.client("scancel", ["--batch", "--signal=USR1", (await runOf(runId)).slurmJobId!]);
    const run = await ended(runId);
    resetControls();
    expect(await attemptFile(runId, "train.log")).toMatch(/Received SIGUSR1/);
    expect(run).toMatchObject({ status: "failed", exitCode: 138, slurmState: "FAILED" });
    expect(run.error).toMatch(/time limit \(USR1, 120 s before it\) was passed to the trainer, which then ended with code 138; its last checkpoint is at step \d+0 of 100000/);
    expect(await attemptFile(runId, "usr1_at")).toMatch(/^\d+\n$/);
  });

  it("fails a run whose job Slurm refuses, saying why, without retrying", { timeout: 60_000 }, async () => {
    const { id: targetId } = await slurmTarget({ partition: "nosuchpartition" });
    const dataset = await datasetWithBuild(db, env(), actor.orgId);
    const { runId } = await startRun(db, { actor, input: { datasetId: dataset.id, targetId, policyType: "act", steps: 20, saveFreq: 10, logFreq: 10 } });
    const run = await ended(runId);
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/refused the job: .*invalid partition/i);
    expect(run.slurmJobId).toBeNull();
  });
});
