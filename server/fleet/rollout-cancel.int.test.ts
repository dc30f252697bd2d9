import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addMember, createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { addPolicyVersion, expectIntact } from "../../tests/helpers/fleet";
import { startSshdRig, type RigDevice, type SshdRig } from "../../tests/helpers/sshd-rig";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { startWorker, type StartedWorker } from "../../worker/worker";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { createDevice, testConnection, updateDevice } from "./devices.service";
import { createDeviceInput, createRolloutInput } from "./fleet.schemas";
import { cancelRollout, createRollout, getRollout } from "./rollouts.service";

// Cancelling a rollout through a real worker to real sshd devices: devices not started are
// skipped, a running device job is cancelled and its device goes back when it was swapped, the
// rollout ends cancelled and an alert says who cancelled it.

let database: TestDatabase;
let db: Db;
let worker: StartedWorker;
let rig: SshdRig;
let admin: OrgActor;
let operator: OrgActor;
let devices: { rig: RigDevice; id: string }[];
const versions: { id: string; sha256: string }[] = [];

beforeAll(async () => {
  database = await createTestDatabase("fleet-cancel");
  db = createDb(database.url, 4);
  worker = await startWorker({ url: database.url, concurrency: 4, log: () => {} });
  rig = await startSshdRig(2, { names: ["arm-x", "arm-y"] });
  admin = (await createOrgWithMember(db, "admin")).actor;
  operator = await addMember(db, admin.orgId, "operator");
  devices = [];
  for (const d of rig.devices) {
    const input = createDeviceInput.parse({ name: d.name, host: d.host, port: d.port, username: d.user, credential: { kind: "key", privateKey: rig.privateKey }, modelDir: d.modelDir });
    const id = (await createDevice(db, { actor: admin, input })).id;
    await testConnection(db, { actor: admin, orgId: admin.orgId, deviceId: id });
    devices.push({ rig: d, id });
  }
  versions.push(await addPolicyVersion(db, admin.orgId, 1024 * 1024, 1), await addPolicyVersion(db, admin.orgId, 1024 * 1024 + 5, 2));
}, 120_000);
afterAll(async () => {
  await worker?.stop();
  await rig?.stop();
  await db?.$disconnect();
  await database?.drop();
});

const rollout = (deploymentId: string) => getRollout(db, { orgId: admin.orgId, deploymentId });
const isSettled = (r: Awaited<ReturnType<typeof rollout>>) => r.targets.every((t) => t.state !== "queued" && t.state !== "running");

describe("cancelling a rollout", { timeout: 180_000 }, () => {
  it("installs version 1 everywhere first", async () => {
    const { id } = await createRollout(db, { actor: operator, input: createRolloutInput.parse({ modelVersionId: versions[0].id, selector: { deviceIds: devices.map((d) => d.id) } }) });
    const r = await waitFor(async () => ((await rollout(id)).status === "succeeded" ? rollout(id) : null), { timeoutMs: 60_000, what: "version 1 to be installed" });
    expect(r.targets.map((t) => t.state)).toEqual(["succeeded", "succeeded"]);
  });

  it("cancels a scheduled rollout: its jobs never run and every device is skipped", async () => {
    const startAt = new Date(Date.now() + 3600_000);
    const { id } = await createRollout(db, { actor: operator, input: createRolloutInput.parse({ modelVersionId: versions[1].id, selector: { deviceIds: devices.map((d) => d.id) }, startAt }) });
    const jobIds = (await rollout(id)).targets.map((t) => t.jobId!);
    await cancelRollout(db, { actor: operator, deploymentId: id });
    const r = await rollout(id);
    expect(r).toMatchObject({ status: "cancelled", error: `Cancelled by ${operator.label}` });
    expect(r.targets.map((t) => [t.state, t.step])).toEqual([["skipped", "Not started: the rollout was cancelled"], ["skipped", "Not started: the rollout was cancelled"]]);
    expect((await db.job.findMany({ where: { id: { in: jobIds } } })).map((j) => j.status)).toEqual(["cancelled", "cancelled"]);
    expect(await db.$queryRaw`SELECT id FROM graphile_worker.jobs WHERE key = ANY(${jobIds}::text[])`).toEqual([]);
    const alert = await db.alert.findFirstOrThrow({ where: { orgId: admin.orgId, kind: "rollout.cancelled", target: `deployment:${id}` } });
    expect(alert.message).toBe(`${operator.label} cancelled it: 2 device(s) not started were skipped`);
    const audit = await db.auditEvent.findMany({ where: { orgId: admin.orgId, action: "job.cancel", actorId: operator.userId } });
    expect(audit.map((a) => a.target).sort()).toEqual([...jobIds].sort());
    expect(await db.auditEvent.count({ where: { orgId: admin.orgId, action: "rollout.cancel", actorId: operator.userId, target: `deployment:${id}` } })).toBe(1);
    // Once cancelled, it stays so.
    await expect(cancelRollout(db, { actor: operator, deploymentId: id })).rejects.toMatchObject({ code: "CONFLICT" });
    for (const d of devices) expectIntact(d.rig, versions[0].sha256);
  });

  it("cancels a running canary rollout: the swapped canary goes back, the batch is skipped", async () => {
    const [canary, other] = devices;
    // A slow restart holds the canary just after its swap, where the cancel lands.
    await updateDevice(db, { actor: admin, input: { deviceId: canary.id, restartCommand: "sleep 3 && sudo systemctl restart gantry-policy" } });
    const { id } = await createRollout(db, {
      actor: operator,
      input: createRolloutInput.parse({ modelVersionId: versions[1].id, selector: { deviceIds: devices.map((d) => d.id) }, strategy: { kind: "canary", canary: 1, batchSize: 1, maxFailurePercent: 0 } }),
    });
    await waitFor(async () => (await rollout(id)).targets[0].step === "Restart", { timeoutMs: 30_000, what: "the canary to reach its restart" });
    expect(canary.rig.currentTarget()).toBe(`models/${versions[1].sha256}.onnx`);

    await cancelRollout(db, { actor: operator, deploymentId: id });
    expect((await rollout(id)).status).toBe("cancelled");
    const r = await waitFor(async () => {
      const now = await rollout(id);
      return isSettled(now) ? now : null;
    }, { timeoutMs: 45_000, what: "the canary to go back" });
    await updateDevice(db, { actor: admin, input: { deviceId: canary.id, restartCommand: "sudo systemctl restart gantry-policy" } });

    expect(r.status).toBe("cancelled");
    expect(r.targets[0]).toMatchObject({ deviceName: "arm-x", state: "rolled_back", rollback: "succeeded", previousTarget: `models/${versions[0].sha256}.onnx`, error: 'Cancelled during step "Restart"' });
    expect(r.targets[1]).toMatchObject({ deviceName: "arm-y", state: "skipped", step: "Not started: the rollout was cancelled", jobId: null });
    expectIntact(canary.rig, versions[0].sha256);
    expectIntact(other.rig, versions[0].sha256);
    await waitFor(async () => (await db.job.findUniqueOrThrow({ where: { id: r.targets[0].jobId! } })).status === "cancelled", { what: "the canary's job to end cancelled" });
    const alert = await db.alert.findFirstOrThrow({ where: { orgId: admin.orgId, kind: "rollout.cancelled", target: `deployment:${id}` } });
    expect(alert.message).toMatch(new RegExp(`^${operator.label} cancelled it: 1 device\\(s\\) not started were skipped, 1 running were stopped`));
    // A cancelled rollout raises no failure alert of its own.
    expect(await db.alert.count({ where: { orgId: admin.orgId, kind: "rollout.failed", target: `deployment:${id}` } })).toBe(0);
    expect((await db.device.findUniqueOrThrow({ where: { id: canary.id } })).currentVersionId).toBe(versions[0].id);
  });
});
