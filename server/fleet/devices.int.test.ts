import { describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { startPasswordSshd } from "../../tests/helpers/fleet-password-sshd";
import { createDeviceInput, deviceSummarySchema } from "./fleet.schemas";
import { createDevice, getDevice, listDevices, testConnection, updateDevice } from "./devices.service";

describe("devices", () => {
  it("keeps a password sealed, signs in with it, and never returns it", async () => {
    const db = testDb();
    const { actor, orgId } = await createOrgWithMember(db, "admin");
    const sshd = await startPasswordSshd({ password: "pw-secret-123" });
    try {
      const input = createDeviceInput.parse({ name: "pw-1", host: "127.0.0.1", port: sshd.port, username: sshd.username, credential: { kind: "password", password: "pw-secret-123" }, modelDir: "/opt/gantry/" });
      const { id } = await createDevice(db, { actor, input });
      const row = await db.device.findUniqueOrThrow({ where: { id } });
      expect(row).toMatchObject({ authKind: "password", modelDir: "/opt/gantry" });
      expect(row.credential).not.toContain("pw-secret-123");
      const result = await testConnection(db, { actor, orgId, deviceId: id });
      expect(result).toMatchObject({ isOk: true, isNewlyPinned: true, fingerprint: expect.stringMatching(/^SHA256:/) });
      const everything = JSON.stringify([await listDevices(db, { orgId }), await getDevice(db, { orgId, deviceId: id }), result]);
      expect(everything).not.toContain("pw-secret-123");
      expect(Object.keys(deviceSummarySchema.shape)).not.toContain("credential");
      const audit = await db.auditEvent.findMany({ where: { orgId }, select: { action: true, data: true } });
      expect(audit.map((a) => a.action)).toEqual(["device.create", "device.test"]);
      expect(JSON.stringify(audit)).not.toContain("pw-secret-123");

      // Moving a device to another address forgets its host key: it is another machine.
      await updateDevice(db, { actor, input: { deviceId: id, host: "127.0.0.2", credential: { kind: "password", password: "pw-secret-123" } } });
      expect((await db.device.findUniqueOrThrow({ where: { id } })).pinnedHostKey).toBeNull();
    } finally {
      await sshd.close();
    }
  });

  it("sends the stored password to no other address: moving a device needs it entered again", async () => {
    const db = testDb();
    const { actor, orgId } = await createOrgWithMember(db, "admin");
    // What an admin's changed host would receive: a second SSH server that accepts only another password.
    const real = await startPasswordSshd({ password: "pw-real-456" });
    const elsewhere = await startPasswordSshd({ password: "not-the-stored-one" });
    try {
      const input = createDeviceInput.parse({ name: "mover", host: "127.0.0.1", port: real.port, username: real.username, credential: { kind: "password", password: "pw-real-456" } });
      const { id } = await createDevice(db, { actor, input });
      expect(await testConnection(db, { actor, orgId, deviceId: id })).toMatchObject({ isOk: true });
      const before = await db.device.findUniqueOrThrow({ where: { id } });

      for (const move of [{ host: "127.0.0.2" }, { port: elsewhere.port }, { host: "127.0.0.2", port: elsewhere.port, username: elsewhere.username }]) {
        await expect(updateDevice(db, { actor, input: { deviceId: id, ...move } })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/^Enter mover's password again to move it to 127\.0\.0\.[12]:\d+/) });
      }
      const after = await db.device.findUniqueOrThrow({ where: { id } });
      expect(after).toMatchObject({ host: before.host, port: before.port, credential: before.credential, pinnedHostKey: before.pinnedHostKey });
      // Test connection still goes to the address the password was entered for.
      expect(await testConnection(db, { actor, orgId, deviceId: id })).toMatchObject({ isOk: true });
      expect(elsewhere.passwordsOffered).toEqual([]);

      // Other changes keep the stored password; a move with the password entered again is made.
      await updateDevice(db, { actor, input: { deviceId: id, host: "127.0.0.1", port: real.port, tags: ["bench"] } });
      expect((await db.device.findUniqueOrThrow({ where: { id } })).credential).toBe(before.credential);
      await updateDevice(db, { actor, input: { deviceId: id, port: elsewhere.port, username: elsewhere.username, credential: { kind: "password", password: "not-the-stored-one" } } });
      const moved = await db.device.findUniqueOrThrow({ where: { id } });
      expect(moved).toMatchObject({ port: elsewhere.port, pinnedHostKey: null });
      expect(moved.credential).not.toBe(before.credential);
      expect(await testConnection(db, { actor, orgId, deviceId: id })).toMatchObject({ isOk: true });
      expect(elsewhere.passwordsOffered).not.toContain("pw-real-456");
      const audit = await db.auditEvent.findMany({ where: { orgId, action: "device.update" }, orderBy: { id: "asc" }, select: { data: true } });
      expect(audit.map((a) => (a.data as { isCredentialChanged: boolean }).isCredentialChanged)).toEqual([false, true]);
    } finally {
      await real.close();
      await elsewhere.close();
    }
  });

  it("refuses names, hosts and directories that could escape their place", () => {
    const base = { name: "ok", host: "10.0.0.1", username: "robot", credential: { kind: "password", password: "x" } };
    expect(createDeviceInput.safeParse({ ...base, name: "a b; rm -rf /" }).success).toBe(false);
    expect(createDeviceInput.safeParse({ ...base, host: "$(id)" }).success).toBe(false);
    expect(createDeviceInput.safeParse({ ...base, modelDir: "relative/dir" }).success).toBe(false);
    expect(createDeviceInput.safeParse({ ...base, modelDir: "/opt/../etc" }).success).toBe(false);
    expect(createDeviceInput.safeParse({ ...base, username: "robot;id" }).success).toBe(false);
    expect(createDeviceInput.safeParse({ ...base, modelDir: "/opt/it's here" }).success).toBe(true);
  });
});
