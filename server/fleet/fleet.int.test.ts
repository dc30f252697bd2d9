import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrgWithMember, waitFor } from "../../tests/helpers/factories";
import { addPolicyVersion, expectIntact } from "../../tests/helpers/fleet";
import { startSshdRig, type RigDevice, type SshdRig } from "../../tests/helpers/sshd-rig";
import { createTestDatabase, type TestDatabase } from "../../tests/setup/test-database";
import { startWorker, type StartedWorker } from "../../worker/worker";
import type { OrgActor } from "../auth/roles";
import { createDb, type Db } from "../db";
import { createDeviceInput, createRolloutInput } from "./fleet.schemas";
import { createDevice, getDevice, listDevices, repinHostKey, testConnection, updateDevice } from "./devices.service";
import { createRollout, getRollout, planPhases, rollbackRollout } from "./rollouts.service";

// Rollouts through a real worker to real sshd devices, with faults injected on the way. After
// every scenario each device's current_model.onnx must point at a complete file whose sha256
// is the registry's, and the records must say what happened.

let database: TestDatabase;
let db: Db;
let worker: StartedWorker;
let rig: SshdRig;
let admin: OrgActor;
let devices: { rig: RigDevice; id: string }[];
const versions: { id: string; sha256: string }[] = [];

beforeAll(async () => {
  database = await createTestDatabase("fleet");
  db = createDb(database.url, 4);
  worker = await startWorker({ url: database.url, concurrency: 4, log: () => {} });
  rig = await startSshdRig(3, { names: ["arm-a", "arm-b", "arm-c"] });
  admin = (await createOrgWithMember(db, "admin")).actor;
  devices = [];
  for (const d of rig.devices) {
    const input = createDeviceInput.parse({ name: d.name, host: d.host, port: d.port, username: d.user, credential: { kind: "key", privateKey: rig.privateKey }, tags: ["lab"], group: "bench", modelDir: d.modelDir });
    devices.push({ rig: d, id: (await createDevice(db, { actor: admin, input })).id });
  }
  versions.push(await addPolicyVersion(db, admin.orgId, 3 * 1024 * 1024, 1), await addPolicyVersion(db, admin.orgId, 3 * 1024 * 1024 + 7, 2), await addPolicyVersion(db, admin.orgId, 3 * 1024 * 1024 + 13, 3));
}, 120_000);
afterAll(async () => {
  await worker?.stop();
  await rig?.stop();
  await db?.$disconnect();
  await database?.drop();
});

const settled = (deploymentId: string) =>
  waitFor(
    async () => {
      const r = await getRollout(db, { orgId: admin.orgId, deploymentId });
      return ["succeeded", "failed", "aborted"].includes(r.status) ? r : null;
    },
    { timeoutMs: 90_000, what: "the rollout to finish" },
  );

async function rollOut(versionIndex: number, deviceIndexes: number[], strategy: unknown = { kind: "all" }) {
  const input = createRolloutInput.parse({ modelVersionId: versions[versionIndex].id, selector: { deviceIds: deviceIndexes.map((i) => devices[i].id) }, strategy });
  const { id } = await createRollout(db, { actor: admin, input });
  return settled(id);
}

describe("fleet", { timeout: 180_000 }, () => {
  it("plans the canary and its batches", () => {
    expect(planPhases(7, { kind: "canary", canary: 2, batchSize: 2, maxFailurePercent: 0 })).toEqual([0, 0, 1, 1, 2, 2, 3]);
    expect(planPhases(3, { kind: "all" })).toEqual([0, 0, 0]);
  });

  it("tests a connection: pins the host key and reports facts, and never returns the credential", async () => {
    for (const d of devices) {
      const result = await testConnection(db, { actor: admin, orgId: admin.orgId, deviceId: d.id });
      expect(result).toMatchObject({ isOk: true, fingerprint: d.rig.fingerprint(), isNewlyPinned: true });
      expect(result.facts).toMatchObject({ arch: expect.any(String), isServicePresent: true, currentTarget: null });
      expect(result.facts!.diskFreeBytes).toBeGreaterThan(0);
      expect(result.facts!.memoryBytes).toBeGreaterThan(0);
    }
    const listed = JSON.stringify(await listDevices(db, { orgId: admin.orgId }));
    expect(listed).not.toContain("PRIVATE KEY");
    const stored = await db.device.findUniqueOrThrow({ where: { id: devices[0].id } });
    expect(stored.credential).not.toContain("PRIVATE KEY");
    expect(stored.pinnedHostKey).toBe(devices[0].rig.fingerprint());
  });

  it("rolls out canary-first to every device: uploaded, verified, swapped, restarted, healthy", async () => {
    const r = await rollOut(0, [0, 1, 2], { kind: "canary", canary: 1, batchSize: 2, maxFailurePercent: 0 });
    expect(r.status).toBe("succeeded");
    expect(r.targets.map((t) => [t.phase, t.state])).toEqual([[0, "succeeded"], [1, "succeeded"], [1, "succeeded"]]);
    for (const d of devices) {
      expectIntact(d.rig, versions[0].sha256);
      expect(d.rig.systemctlCalls()).toContain("restart gantry-policy");
    }
    // The canary finished before the batch started.
    expect(r.targets[0].finishedAt!.getTime()).toBeLessThanOrEqual(r.targets[1].startedAt!.getTime());
    const device = await getDevice(db, { orgId: admin.orgId, deviceId: devices[0].id });
    expect(device.currentVersion).toMatchObject({ id: versions[0].id, number: 1 });
    expect(device.history[0]).toMatchObject({ state: "succeeded" });
    const facts = await testConnection(db, { actor: admin, orgId: admin.orgId, deviceId: devices[0].id });
    expect(facts.facts).toMatchObject({ currentSha256: versions[0].sha256, currentVersion: { id: versions[0].id }, serviceState: "active" });
  });

  it("rolls a device whose health check fails back by itself, while the others succeed", async () => {
    devices[1].rig.control("bad-models", versions[1].sha256);
    const r = await rollOut(1, [0, 1, 2]);
    devices[1].rig.control("bad-models", null);
    expect(r.status).toBe("failed");
    const byName = Object.fromEntries(r.targets.map((t) => [t.deviceName, t]));
    expect(byName["arm-a"].state).toBe("succeeded");
    expect(byName["arm-c"].state).toBe("succeeded");
    expect(byName["arm-b"]).toMatchObject({ state: "rolled_back", rollback: "succeeded", previousTarget: `models/${versions[0].sha256}.onnx` });
    expect(byName["arm-b"].log).toMatch(/Health check attempt 3 of 3/);
    expect(byName["arm-b"].log).toMatch(/Health check passed/);
    expectIntact(devices[0].rig, versions[1].sha256);
    expectIntact(devices[1].rig, versions[0].sha256);
    expectIntact(devices[2].rig, versions[1].sha256);
    const b = await db.device.findUniqueOrThrow({ where: { id: devices[1].id } });
    expect(b.currentVersionId).toBe(versions[0].id);
    const alerts = await db.alert.findMany({ where: { orgId: admin.orgId, kind: "rollout.failed" } });
    expect(alerts.map((a) => a.message).join()).toMatch(/arm-b \(rolled back\)/);
  });

  it("rolls a whole rollout back to what each device ran before", async () => {
    const last = (await db.deployment.findFirstOrThrow({ where: { orgId: admin.orgId, kind: "rollout" }, orderBy: { createdAt: "desc" } })).id;
    const { id } = await rollbackRollout(db, { actor: admin, input: { deploymentId: last } });
    const r = await settled(id);
    expect(r).toMatchObject({ kind: "rollback", status: "succeeded" });
    // arm-b was already back; the others return to version 1.
    expect(r.targets.map((t) => t.deviceName).sort()).toEqual(["arm-a", "arm-c"]);
    for (const d of devices) expectIntact(d.rig, versions[0].sha256);
    const audit = await db.auditEvent.findMany({ where: { orgId: admin.orgId }, select: { action: true } });
    expect(new Set(audit.map((a) => a.action))).toEqual(new Set(["device.create", "device.test", "rollout.create", "rollout.rollback"]));
  });

  it("refuses to start an upload on a full disk and changes nothing", async () => {
    devices[2].rig.control("disk-free-kb", "10");
    const r = await rollOut(2, [2]);
    devices[2].rig.control("disk-free-kb", null);
    expect(r.status).toBe("failed");
    expect(r.targets[0]).toMatchObject({ state: "failed", step: "Check free disk", rollback: null });
    expect(r.targets[0].error).toMatch(/Not enough free disk on arm-c/);
    expectIntact(devices[2].rig, versions[0].sha256);
    expect(fs.existsSync(path.join(devices[2].rig.modelDir, "models", `${versions[2].sha256}.onnx`))).toBe(false);
  });

  it("resumes an upload after the connection drops mid-way", async () => {
    const d = devices[0].rig;
    const before = d.bytesIn();
    // Cut two thirds of the way into the 3 MiB model (what was on its way then is lost with the connection).
    const cut = 2 * 1024 * 1024;
    d.cutAfterBytes(cut);
    const r = await rollOut(2, [0]);
    expect(r.status).toBe("succeeded");
    expect(r.targets[0].log).toMatch(/Connection dropped; attempt 2 resumes from/);
    expectIntact(d, versions[2].sha256);
    // The resumed attempt did not send the whole file again.
    expect(d.bytesIn() - before).toBeLessThan(cut + 3 * 1024 * 1024);
  });

  it("refuses a device whose host key changed, until an admin re-pins it", async () => {
    const d = devices[2].rig;
    const old = d.fingerprint();
    await d.changeHostKey();
    const r = await rollOut(2, [2]);
    expect(r.targets[0].state).toBe("failed");
    expect(r.targets[0].error).toMatch(/host key of arm-c has changed/);
    expectIntact(d, versions[0].sha256);
    const test = await testConnection(db, { actor: admin, orgId: admin.orgId, deviceId: devices[2].id });
    expect(test).toMatchObject({ isOk: false, fingerprint: old, offeredFingerprint: d.fingerprint() });
    await expect(repinHostKey(db, { actor: admin, input: { deviceId: devices[2].id, fingerprint: old } })).rejects.toThrow(/nothing was changed/);
    await repinHostKey(db, { actor: admin, input: { deviceId: devices[2].id, fingerprint: d.fingerprint() } });
    expect((await testConnection(db, { actor: admin, orgId: admin.orgId, deviceId: devices[2].id })).isOk).toBe(true);
  });

  it("fails a device that is down, and stops a canary rollout when its canary fails", async () => {
    await devices[0].rig.down();
    const r = await rollOut(1, [0, 1, 2], { kind: "canary", canary: 1, batchSize: 1, maxFailurePercent: 0 });
    await devices[0].rig.up();
    expect(r.status).toBe("aborted");
    expect(r.error).toMatch(/Stopped: 1 of 1 devices failed/);
    expect(r.targets.map((t) => [t.deviceName, t.state])).toEqual([["arm-a", "failed"], ["arm-b", "skipped"], ["arm-c", "skipped"]]);
    expect(r.targets[0].error).toMatch(/Could not open an SSH session with arm-a/);
    expectIntact(devices[0].rig, versions[2].sha256);
    expectIntact(devices[1].rig, versions[0].sha256);
  });

  it("keeps user-supplied names out of the shell: a model directory with quotes and $(…) is used as a path", async () => {
    const d = devices[1];
    const dir = path.join(d.rig.dir, "it's $(touch pwned) dir");
    await updateDevice(db, { actor: admin, input: { deviceId: d.id, modelDir: dir } });
    const r = await rollOut(2, [1]);
    expect(r.status).toBe("succeeded");
    expect(fs.readlinkSync(path.join(dir, "current_model.onnx"))).toBe(`models/${versions[2].sha256}.onnx`);
    expect(fs.existsSync(path.join(d.rig.dir, "pwned"))).toBe(false);
    expect(fs.readdirSync("/root").includes("pwned")).toBe(false);
    await updateDevice(db, { actor: admin, input: { deviceId: d.id, modelDir: d.rig.modelDir } });
  });
});
