import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDb } from "../../tests/helpers/db";
import { createOrgWithMember } from "../../tests/helpers/factories";
import { startSshdRig, type SshdRig } from "../../tests/helpers/sshd-rig";
import { discoverSshHosts, parseRange } from "./discovery.service";

let rig: SshdRig;
beforeAll(async () => {
  rig = await startSshdRig(1);
});
afterAll(() => rig?.stop());

describe("discovery", () => {
  it("reads ranges and refuses large or malformed ones", () => {
    expect(parseRange("10.0.0.0/30")).toEqual(["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    expect(parseRange("10.0.0.254-10.0.1.1")).toEqual(["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]);
    expect(parseRange("10.0.0.5-7")).toEqual(["10.0.0.5", "10.0.0.6", "10.0.0.7"]);
    expect(parseRange("127.0.0.1")).toEqual(["127.0.0.1"]);
    expect(() => parseRange("10.0.0.0/16")).toThrow(/at most 1024/);
    expect(() => parseRange("example.com")).toThrow(/not a range/);
    expect(() => parseRange("10.0.0.9-10.0.0.1")).toThrow(/not a range/);
  });

  it("finds the SSH server on loopback and says which device it already is", async () => {
    const db = testDb();
    const { orgId } = await createOrgWithMember(db);
    const d = rig.devices[0];
    const found = await discoverSshHosts(db, { orgId, input: { range: "127.0.0.0/30", port: d.port, timeoutMs: 1000 } });
    expect(found).toEqual([{ host: "127.0.0.1", port: d.port, banner: expect.stringMatching(/^SSH-2.0-OpenSSH/), knownDeviceId: null }]);
    const device = await db.device.create({ data: { orgId, name: "known", host: "127.0.0.1", port: d.port, username: "root", authKind: "key", credential: "v1:x", modelDir: "/tmp/x", restartCommand: "true", healthCommand: "true" } });
    const again = await discoverSshHosts(db, { orgId, input: { range: "127.0.0.1", port: d.port, timeoutMs: 1000 } });
    expect(again[0].knownDeviceId).toBe(device.id);
  });
});
