import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { addPolicyVersion, expectIntact } from "../../tests/helpers/fleet";
import { startSshdRig, type RigDevice, type SshdRig } from "../../tests/helpers/sshd-rig";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import deployDeviceTask from "../../worker/tasks/fleet/deploy-device";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { CancellationRegistry } from "../jobs/cancellation";
import { deployDeviceJob } from "../jobs/catalog";
import { silentProgress, type ProgressReporter } from "../jobs/progress";
import { runJob } from "../jobs/run";
import { blobStore } from "../storage/blobs";
import { cancelJob } from "../jobs/jobs.service";
import { deployToDevice, finishCancelledDeployments } from "./deploy.service";
import { createDevice, testConnection } from "./devices.service";
import { createDeviceInput, createRolloutInput } from "./fleet.schemas";
import { createRollout, settleStrandedTargets } from "./rollouts.service";

// A device deployment whose worker dies half-way runs again (the job has attempts left) and
// picks up from the target's record: the device is checked again, the previous target is the
// one recorded before the swap, a file already there is not sent again, and a target that
// already ended is never deployed again. No worker runs on this database: each test runs the
// device's job itself, as a worker would, and "dies" where it chooses.

let database: TestDatabase;
let db: Db;
let rig: SshdRig;
let actor: OrgActor;
let device: { rig: RigDevice; id: string };
const versions: { id: string; sha256: string; bytes: number }[] = [];

beforeAll(async () => {
  database = await createTestDatabase("fleet-resume");
  db = createDb(database.url, 4);
  rig = await startSshdRig(1, { names: ["arm-r"] });
  actor = (await createOrgWithMember(db, "operator")).actor;
  const d = rig.devices[0];
  const input = createDeviceInput.parse({ name: d.name, host: d.host, port: d.port, username: d.user, credential: { kind: "key", privateKey: rig.privateKey }, modelDir: d.modelDir });
  device = { rig: d, id: (await createDevice(db, { actor, input })).id };
  await testConnection(db, { actor, orgId: actor.orgId, deviceId: device.id });
  versions.push(await addPolicyVersion(db, actor.orgId, 2 * 1024 * 1024, 1), await addPolicyVersion(db, actor.orgId, 2 * 1024 * 1024 + 3, 2), await addPolicyVersion(db, actor.orgId, 4 * 1024 * 1024, 3), await addPolicyVersion(db, actor.orgId, 3 * 1024 * 1024, 4));
}, 120_000);
afterAll(async () => {
  await rig?.stop();
  await db?.$disconnect();
  await database?.drop();
});

const linkTo = (v: { sha256: string }) => `models/${v.sha256}.onnx`;

/** The invariant: the link points at a complete file with the registry's digest, and no part is left. */
/** A rollout of one version to the device; its job is queued on a queue no worker serves. */
async function newTarget(version: { id: string }) {
  const { id } = await createRollout(db, { actor, input: createRolloutInput.parse({ modelVersionId: version.id, selector: { deviceIds: [device.id] } }) });
  return db.deploymentTarget.findFirstOrThrow({ where: { deploymentId: id } });
}

/** One attempt of the device's job, as the worker runs it. */
function runAttempt(jobId: string, attempt: number) {
  return runJob({ db, def: deployDeviceJob, jobId, attempt, cancellations: new CancellationRegistry(), handler: deployDeviceTask.handler });
}

/** A worker that dies when it reaches `step`: nothing after that point ever runs. */
function dyingAt(step: string, reached: () => void): ProgressReporter {
  return {
    ...silentProgress,
    step: (name) => {
      if (name !== step) return Promise.resolve();
      reached();
      return new Promise<void>(() => {});
    },
  };
}

async function deployAndDieAt(target: { id: string }, step: string) {
  let reached!: () => void;
  const isReached = new Promise<void>((r) => (reached = r));
  void deployToDevice(db, { orgId: actor.orgId, targetId: target.id, blobs: blobStore(), progress: dyingAt(step, reached), healthDelayMs: 100 });
  await isReached;
}

describe("deployment after a crash", { timeout: 180_000 }, () => {
  it("installs the first version", async () => {
    const target = await newTarget(versions[0]);
    await runAttempt(target.jobId!, 1);
    expect(await db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } })).toMatchObject({ state: "succeeded", previousTarget: null });
    expectIntact(device.rig, versions[0].sha256);
  });

  it("goes back to the previous target recorded before the swap, not to the link it finds", async () => {
    const target = await newTarget(versions[1]);
    // The worker dies right after the swap, before the restart.
    await deployAndDieAt(target, "Restart");
    expect(device.rig.currentTarget()).toBe(linkTo(versions[1]));
    expect(await db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } })).toMatchObject({ state: "running", step: "Swap", previousTarget: linkTo(versions[0]) });

    // The new version does not come up; the run after the crash must go back to version 1.
    device.rig.control("bad-models", versions[1].sha256);
    await runAttempt(target.jobId!, 2);
    device.rig.control("bad-models", null);
    const after = await db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } });
    expect(after).toMatchObject({ state: "rolled_back", rollback: "succeeded", previousTarget: linkTo(versions[0]), previousVersionId: versions[0].id });
    expect(after.log).toMatch(/Resuming after an interruption at step "Swap"/);
    expect(after.log).toMatch(/recorded before the interruption: models\//);
    expectIntact(device.rig, versions[0].sha256);
    expect((await db.device.findUniqueOrThrow({ where: { id: device.id } })).currentVersionId).toBe(versions[0].id);
    // A failed health check that rolled back is final: the job failed, with no retry queued.
    const job = await db.job.findUniqueOrThrow({ where: { id: target.jobId! } });
    expect(job).toMatchObject({ status: "failed", attempts: 2, maxAttempts: 3 });
    expect(job.error).toMatch(/^Rolled back: /);

    // Run again (a redelivered entry): nothing is redone and the failure stays a failure.
    const restarts = device.rig.systemctlCalls().filter((c) => c.startsWith("restart")).length;
    await expect(deployToDevice(db, { orgId: actor.orgId, targetId: target.id, blobs: blobStore(), progress: silentProgress })).rejects.toMatchObject({ code: "CONFLICT" });
    expect(await db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } })).toMatchObject({ state: "rolled_back", log: after.log });
    expect(device.rig.systemctlCalls().filter((c) => c.startsWith("restart")).length).toBe(restarts);
    expectIntact(device.rig, versions[0].sha256);
  });

  it("finishes a deployment a crash left after the swap without sending the file again", async () => {
    const v = versions[2];
    const target = await newTarget(v);
    // What a crash after the swap leaves: the file in place, the link swapped, the record at the swap.
    fs.copyFileSync(await blobFile(v.sha256), path.join(device.rig.modelDir, "models", `${v.sha256}.onnx`));
    fs.symlinkSync(linkTo(v), path.join(device.rig.modelDir, ".swap-tmp"));
    fs.renameSync(path.join(device.rig.modelDir, ".swap-tmp"), path.join(device.rig.modelDir, "current_model.onnx"));
    await db.deploymentTarget.update({ where: { id: target.id }, data: { state: "running", step: "Restart", previousTarget: linkTo(versions[0]), previousVersionId: versions[0].id, startedAt: new Date() } });
    await db.job.update({ where: { id: target.jobId! }, data: { status: "running", attempts: 1 } });

    const sent = device.rig.bytesIn();
    await runAttempt(target.jobId!, 2);
    const after = await db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } });
    expect(after).toMatchObject({ state: "succeeded", step: "Done", previousTarget: linkTo(versions[0]), error: null });
    expect(after.log).toMatch(/Upload \(already on the device\)/);
    expect(device.rig.bytesIn() - sent).toBeLessThan(v.bytes / 4);
    expectIntact(device.rig, v.sha256);
    expect(await db.job.findUniqueOrThrow({ where: { id: target.jobId! } })).toMatchObject({ status: "succeeded", attempts: 2 });
    expect((await db.deployment.findUniqueOrThrow({ where: { id: target.deploymentId } })).status).toBe("succeeded");
  });

  it("goes on from the part a crash left mid-upload, and reads the previous target afresh", async () => {
    const v = versions[3];
    const target = await newTarget(v);
    // Half the file in the part, the record at the upload, the link untouched.
    const whole = fs.readFileSync(await blobFile(v.sha256));
    fs.writeFileSync(path.join(device.rig.modelDir, "models", `${v.sha256}.onnx.part`), whole.subarray(0, whole.length / 2));
    await db.deploymentTarget.update({ where: { id: target.id }, data: { state: "running", step: "Upload", startedAt: new Date() } });

    const sent = device.rig.bytesIn();
    await runAttempt(target.jobId!, 2);
    const after = await db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } });
    expect(after).toMatchObject({ state: "succeeded", previousTarget: linkTo(versions[2]), previousVersionId: versions[2].id });
    expect(after.log).toMatch(/Uploaded the last .* were already on the device/);
    expect(device.rig.bytesIn() - sent).toBeLessThan(0.75 * v.bytes);
    expectIntact(device.rig, v.sha256);
  });

  it("finishes going back when a crash stopped the rollback, and ends rolled back, not succeeded", async () => {
    const v = versions[2];
    const target = await newTarget(v);
    // The new version failed its health check and the rollback had begun when the worker died.
    fs.symlinkSync(linkTo(v), path.join(device.rig.modelDir, ".swap-tmp"));
    fs.renameSync(path.join(device.rig.modelDir, ".swap-tmp"), path.join(device.rig.modelDir, "current_model.onnx"));
    const reason = "The health check failed on arm-r (exit 3): failed";
    await db.deploymentTarget.update({ where: { id: target.id }, data: { state: "running", step: "Roll back", previousTarget: linkTo(versions[3]), previousVersionId: versions[3].id, error: reason, startedAt: new Date() } });
    await db.job.update({ where: { id: target.jobId! }, data: { status: "running", attempts: 1 } });

    await runAttempt(target.jobId!, 2);
    const after = await db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } });
    expect(after).toMatchObject({ state: "rolled_back", rollback: "succeeded", error: reason, previousTarget: linkTo(versions[3]) });
    expect(after.log.slice(after.log.indexOf("Resuming"))).not.toMatch(/Check free disk|Upload|Restarting the policy service failed/);
    expectIntact(device.rig, versions[3].sha256);
    expect(await db.job.findUniqueOrThrow({ where: { id: target.jobId! } })).toMatchObject({ status: "failed", error: `Rolled back: ${reason}` });
  });

  it("never deploys again a target that already succeeded", async () => {
    const target = await db.deploymentTarget.findFirstOrThrow({ where: { modelVersionId: versions[3].id, state: "succeeded" } });
    const restarts = device.rig.systemctlCalls().length;
    await expect(deployToDevice(db, { orgId: actor.orgId, targetId: target.id, blobs: blobStore(), progress: silentProgress })).resolves.toEqual({ state: "succeeded" });
    expect(device.rig.systemctlCalls().length).toBe(restarts);
    expectIntact(device.rig, versions[3].sha256);
  });

  it("sends a device back when its job is cancelled while no worker holds it, after the swap", async () => {
    const target = await newTarget(versions[0]);
    await deployAndDieAt(target, "Restart");
    expect(device.rig.currentTarget()).toBe(linkTo(versions[0]));
    // The job is left running by the dead worker; cancelled then, it never runs again.
    await db.job.update({ where: { id: target.jobId! }, data: { status: "running", attempts: 1 } });
    await cancelJob(db, { actor, jobId: target.jobId! });
    await runAttempt(target.jobId!, 2);
    expect((await db.job.findUniqueOrThrow({ where: { id: target.jobId! } })).status).toBe("cancelled");

    expect(await finishCancelledDeployments(db, { blobs: blobStore() })).toBe(1);
    const after = await db.deploymentTarget.findUniqueOrThrow({ where: { id: target.id } });
    expect(after).toMatchObject({ state: "rolled_back", rollback: "succeeded", previousTarget: linkTo(versions[3]), error: 'Cancelled during step "Swap"' });
    expectIntact(device.rig, versions[3].sha256);
    expect(await finishCancelledDeployments(db, { blobs: blobStore() })).toBe(0);
    expect(await settleStrandedTargets(db)).toBe(0);
  });
});

/** The blob store's copy of a file, as a path (the local store keeps it on disk). */
async function blobFile(sha256: string): Promise<string> {
  const out = path.join(rig.root, `${sha256}.onnx`);
  if (!fs.existsSync(out)) {
    const chunks: Buffer[] = [];
    for await (const c of await blobStore().get(sha256)) chunks.push(c as Buffer);
    fs.writeFileSync(out, Buffer.concat(chunks));
  }
  return out;
}
