import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { SshPool } from "../ssh/ssh-pool";
import { createDeviceInput } from "./fleet.schemas";
import { createDevice, getDevice, listDevices } from "./devices.service";
import { checkDevice } from "./health.service";

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
    await db.device.update({ where: { id }, data: { pinnedHostKey: d.fingerprint() } });

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
    expect(summary.recentStates).toEqual(["unknown", "degraded", "online", "degraded", "degraded", "degraded", "offline", "offline", "degraded"]);
    const detail = await getDevice(db, { orgId, deviceId: id });
    expect(detail.samples[0]).toMatchObject({ state: "degraded", serviceState: "failed" });
    expect(detail.samples[0].diskFreeBytes).toBeGreaterThan(0);
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
});
