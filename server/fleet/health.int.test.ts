import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { SshPool } from "../ssh/ssh-pool";
import { createDeviceInput } from "./fleet.schemas";
import { createDevice, getDevice, listDevices } from "./devices.service";
import { getDeviceHealthHistory } from "./health-history.service";
import { checkDevice, checkDueDevices } from "./health.service";

let rig: SshdRig;
const pool = new SshPool();
beforeAll(async () => {
  rig = await startSshdRig(1);
});
afterAll(async () => {
  pool.close();
  await rig?.stop();
});

describe("health checks", { timeout: 180_000 }, () => {
  it("records online, degraded and offline, reuses the connection, and alerts once when a device goes offline", async () => {
    const db = testDb();
    const { actor, orgId } = await createOrgWithMember(db, "admin");
    const d = rig.devices[0];
    const { id } = await createDevice(db, { actor, input: createDeviceInput.parse({ name: "health-1", host: d.host, port: d.port, username: d.user, credential: { kind: "key", privateKey: rig.privateKey }, modelDir: d.modelDir }) });
    const load = () => db.device.findUniqueOrThrow({ where: { id } });
    expect(await checkDevice(db, await load(), pool)).toBe("unknown");
    // A check that read the device before Test connection pinned its key (and found it degraded)
    // does not write "unknown" over what that test found.
    const unpinned = await load();
    await db.device.update({ where: { id }, data: { pinnedHostKey: d.fingerprint(), state: "degraded" } });
    expect(await checkDevice(db, unpinned, pool)).toBe("unknown");
    expect((await load()).state).toBe("degraded");

    // Nothing runs yet: the configured health command fails, and the reason is said.
    expect(await checkDevice(db, await load(), pool)).toBe("degraded");
    expect((await load()).lastError).toMatch(/The health command \(systemctl is-active --quiet gantry-policy\) exited \d+/);
    // The device's own health command decides, not a guess about systemd.
    await db.device.update({ where: { id }, data: { healthCommand: "test -d /" } });
    expect(await checkDevice(db, await load(), pool)).toBe("online");
    await db.device.update({ where: { id }, data: { healthCommand: "echo 'policy not answering on :9000' >&2; exit 2" } });
    expect(await checkDevice(db, await load(), pool)).toBe("degraded");
    expect((await load()).lastError).toBe("The health command (echo 'policy not answering on :9000' >&2; exit 2) exited 2: policy not answering on :9000");
    await db.device.update({ where: { id }, data: { healthCommand: "systemctl is-active --quiet gantry-policy" } });
    d.control("no-service", "1");
    expect(await checkDevice(db, await load(), pool)).toBe("degraded");
    d.control("no-service", null);
    expect(pool.size).toBe(1);
    const connectionsBefore = d.bytesIn();
    await checkDevice(db, await load(), pool);
    // One more probe over the kept connection: far less than a new handshake and auth.
    expect(d.bytesIn() - connectionsBefore).toBeLessThan(3000);

    await d.down();
    expect(await checkDevice(db, await load(), pool)).toBe("offline");
    expect(await checkDevice(db, await load(), pool)).toBe("offline");
    await d.up();
    const alerts = await db.alert.findMany({ where: { orgId } });
    expect(alerts.map((a) => [a.kind, a.title])).toEqual([["device.offline", "health-1 is offline"]]);
    expect(await checkDevice(db, await load(), pool)).toBe("degraded");

    const [summary] = await listDevices(db, { orgId });
    expect(summary.recentStates).toEqual(["unknown", "unknown", "degraded", "online", "degraded", "degraded", "degraded", "offline", "offline", "degraded"]);
    const detail = await getDevice(db, { orgId, deviceId: id });
    expect(detail.samples[0]).toMatchObject({ state: "degraded", serviceState: "failed" });
    expect(detail.samples[0].diskFreeBytes).toBeGreaterThan(0);

    // A check that read the device before a rollout wrote its new version and state does not write over them.
    const beforeRollout = await load();
    await db.device.update({ where: { id }, data: { currentSha256: "a".repeat(64), state: "online", lastError: null } });
    expect(await checkDevice(db, beforeRollout, pool)).toBe("degraded");
    expect(await load()).toMatchObject({ currentSha256: "a".repeat(64), state: "online", lastError: null });
  });

  it("finds a device offline within one round when its sshd stops, even with a session kept open", async () => {
    const db = testDb();
    const { actor } = await createOrgWithMember(db, "admin");
    const d = rig.devices[0];
    const { id } = await createDevice(db, { actor, input: createDeviceInput.parse({ name: "health-2", host: d.host, port: d.port, username: d.user, credential: { kind: "key", privateKey: rig.privateKey }, modelDir: d.modelDir, healthCommand: "true" }) });
    await db.device.update({ where: { id }, data: { pinnedHostKey: d.fingerprint() } });
    const load = () => db.device.findUniqueOrThrow({ where: { id } });
    expect(await checkDevice(db, await load(), pool)).toBe("online");
    // The listener stops answering; the kept session's relayed connection is left as it is.
    await d.stopListening();
    try {
      expect(await checkDevice(db, await load(), pool)).toBe("offline");
      expect((await load()).lastError).toMatch(/did not answer as an SSH server/);
    } finally {
      await d.up();
    }
    expect(await checkDevice(db, await load(), pool)).toBe("online");
  });

  it("a round leaves a sample of what it read for the device's chart, and prunes samples past their age and past the device's limit", async () => {
    const db = testDb();
    const { actor, orgId } = await createOrgWithMember(db, "admin");
    const other = await createOrgWithMember(db, "admin");
    const d = rig.devices[0];
    const { id } = await createDevice(db, { actor, input: createDeviceInput.parse({ name: "health-3", host: d.host, port: d.port, username: d.user, credential: { kind: "key", privateKey: rig.privateKey }, modelDir: d.modelDir, healthCommand: "true" }) });
    await db.device.update({ where: { id }, data: { pinnedHostKey: d.fingerprint() } });
    const now = Date.now();
    // Older than the fourteen days kept.
    await db.deviceHealthSample.createMany({ data: [20, 15].map((days) => ({ orgId, deviceId: id, at: new Date(now - days * 86_400_000), state: "online" as const, latencyMs: 1 })) });
    // Six in the last hour, a minute apart, the third offline: with the round's own, two past a limit of five.
    await db.deviceHealthSample.createMany({
      data: Array.from({ length: 6 }, (_, i) => ({ orgId, deviceId: id, at: new Date(now - (58 - i) * 60_000), state: i === 2 ? ("offline" as const) : ("online" as const), latencyMs: 100 + i, load1: 0.5, error: i === 2 ? "arm did not answer" : null })),
    });

    expect(await checkDueDevices(db, { pool, orgId, keep: { days: 14, perDevice: 5 } })).toEqual({ checked: 1 });
    const samples = await db.deviceHealthSample.findMany({ where: { deviceId: id }, orderBy: { at: "asc" } });
    expect(samples.map((s) => s.latencyMs).slice(0, 4)).toEqual([102, 103, 104, 105]);
    expect(samples).toHaveLength(5);
    // The round's own sample: what the device said over SSH a moment ago.
    const last = samples[4];
    expect(last).toMatchObject({ state: "online", error: null });
    expect(Number(last.memoryAvailableBytes)).toBeGreaterThan(1024 * 1024);
    expect(Number(last.diskFreeBytes)).toBeGreaterThan(0);
    expect(last.load1).toEqual(expect.any(Number));
    expect(last.latencyMs).toBeGreaterThan(0);

    // The chart's last hour: every sample a point of its own.
    const hour = await getDeviceHealthHistory(db, { orgId, input: { deviceId: id, hours: 1 }, intervalSec: 60 });
    expect(hour.bucketSec).toBe(5);
    expect(hour.points.map((p) => [p.state, p.latencyMs, p.checks])).toEqual([["offline", 102, 1], ["online", 103, 1], ["online", 104, 1], ["online", 105, 1], ["online", last.latencyMs, 1]]);
    expect(hour.points[0].error).toBe("arm did not answer");
    expect(hour.points[4].memoryAvailableBytes).toBe(Number(last.memoryAvailableBytes));
    // Fourteen days: 28-minute buckets, each the worst of its checks, the offline one first.
    const fortnight = await getDeviceHealthHistory(db, { orgId, input: { deviceId: id, hours: 336 }, intervalSec: 60 });
    expect(fortnight.bucketSec).toBe(1680);
    expect(fortnight.points.length).toBeLessThan(5);
    expect(fortnight.points.reduce((n, p) => n + p.checks, 0)).toBe(5);
    expect(fortnight.points[0]).toMatchObject({ state: "offline", error: "arm did not answer" });
    expect(fortnight.points[0].latencyMs).toBe(Math.max(...samples.filter((s) => s.at <= fortnight.points[0].at).map((s) => s.latencyMs!)));

    // Nothing due: a second round at once checks nothing and keeps what is there.
    expect(await checkDueDevices(db, { pool, orgId, keep: { days: 14, perDevice: 5 } })).toEqual({ checked: 0 });
    expect(await db.deviceHealthSample.count({ where: { deviceId: id } })).toBe(5);
    await expect(getDeviceHealthHistory(db, { orgId: other.orgId, input: { deviceId: id, hours: 24 }, intervalSec: 60 })).rejects.toThrow("That device does not exist in this organisation");
  });
});
