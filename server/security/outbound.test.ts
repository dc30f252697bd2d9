import { describe, expect, it } from "vitest";
import { classifyIp, parseCidr, parseIp } from "./ip-ranges";
import { checkAddress, checkHost, judgeAddress, OutboundRefusedError, type OutboundSettings } from "./outbound";

const strict: OutboundSettings = { allowLoopback: false, allowPrivate: false, allowedCidrs: [] };
const kindOf = (address: string) => classifyIp(parseIp(address)!);

describe("address kinds", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["127.255.3.4", "loopback"],
    ["0.0.0.0", "loopback"],
    ["0.1.2.3", "loopback"],
    ["::1", "loopback"],
    ["::", "loopback"],
    ["[::1]", "loopback"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::127.0.0.1", "loopback"],
    ["169.254.169.254", "metadata"],
    ["::ffff:169.254.169.254", "metadata"],
    ["fd00:ec2::254", "metadata"],
    ["100.100.100.200", "metadata"],
    ["169.254.1.1", "link-local"],
    ["fe80::1", "link-local"],
    ["fe80::1%eth0", "link-local"],
    ["febf:ffff::1", "link-local"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.20", "private"],
    ["100.64.0.1", "private"],
    ["100.127.255.254", "private"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["::ffff:10.0.0.1", "private"],
    ["64:ff9b::a00:1", "private"],
    ["2002:7f00:1::", "loopback"],
    ["224.0.0.1", "non-unicast"],
    ["255.255.255.255", "non-unicast"],
    ["ff02::1", "non-unicast"],
    ["8.8.8.8", "public"],
    ["172.32.0.1", "public"],
    ["100.128.0.1", "public"],
    ["2606:4700::1111", "public"],
    ["::ffff:8.8.8.8", "public"],
  ])("%s is %s", (address, kind) => {
    expect(kindOf(address)).toBe(kind);
  });

  it("reads CIDR ranges and single addresses", () => {
    expect(parseCidr("10.0.0.0/8")).toMatchObject({ family: 4, bits: 8 });
    expect(parseCidr("192.0.2.7")).toMatchObject({ family: 4, bits: 32 });
    expect(parseCidr("fd00::/8")).toMatchObject({ family: 6, bits: 8 });
    expect(parseCidr("10.0.0.0/33")).toBeNull();
    expect(parseCidr("example.com/8")).toBeNull();
    expect(parseIp("0x7f000001")).toBeNull();
  });
});

describe("the policy", () => {
  it("refuses loopback, link-local and metadata for every purpose, and private networks for URLs only", () => {
    for (const purpose of ["model-source", "webhook", "device", "training-host", "discovery"] as const) {
      for (const address of ["127.0.0.1", "::1", "169.254.1.1", "169.254.169.254", "fd00:ec2::254", "224.0.0.1"]) {
        expect(judgeAddress(address, purpose, strict).isAllowed).toBe(false);
      }
      expect(judgeAddress("8.8.8.8", purpose, strict).isAllowed).toBe(true);
    }
    expect(judgeAddress("192.168.1.20", "device", strict).isAllowed).toBe(true);
    expect(judgeAddress("10.0.0.5", "training-host", strict).isAllowed).toBe(true);
    expect(judgeAddress("100.64.0.1", "discovery", strict).isAllowed).toBe(true);
    expect(judgeAddress("192.168.1.20", "model-source", strict).isAllowed).toBe(false);
    expect(judgeAddress("fd12::1", "webhook", strict).isAllowed).toBe(false);
  });

  it("follows what an instance admin allows", () => {
    const loopback = { ...strict, allowLoopback: true };
    expect(judgeAddress("127.0.0.1", "model-source", loopback).isAllowed).toBe(true);
    expect(judgeAddress("::ffff:127.0.0.1", "webhook", loopback).isAllowed).toBe(true);
    expect(judgeAddress("169.254.169.254", "webhook", loopback).isAllowed).toBe(false);
    expect(judgeAddress("10.0.0.1", "webhook", { ...strict, allowPrivate: true }).isAllowed).toBe(true);

    const listed = { ...strict, allowedCidrs: ["10.20.0.0/16", "169.254.0.0/16", "127.0.0.2"].map((c) => parseCidr(c)!) };
    expect(judgeAddress("10.20.3.4", "model-source", listed).isAllowed).toBe(true);
    expect(judgeAddress("10.21.3.4", "model-source", listed).isAllowed).toBe(false);
    expect(judgeAddress("169.254.7.7", "device", listed).isAllowed).toBe(true);
    expect(judgeAddress("127.0.0.2", "webhook", listed).isAllowed).toBe(true);
    expect(judgeAddress("127.0.0.1", "webhook", listed).isAllowed).toBe(false);
    // A range that happens to hold the metadata address does not open it; listing it alone does.
    expect(judgeAddress("169.254.169.254", "device", listed).isAllowed).toBe(false);
    const metadata = { ...strict, allowedCidrs: [parseCidr("169.254.169.254/32")!] };
    expect(judgeAddress("169.254.169.254", "device", metadata).isAllowed).toBe(true);
  });

  it("says what was refused, why, and which setting allows it", () => {
    expect(() => checkAddress("127.0.0.1", "model-source", { settings: strict })).toThrow(
      "127.0.0.1 is a loopback address (this server itself), which Gantry does not download model files from; an instance admin can allow it with OUTBOUND_ALLOW_LOOPBACK=true",
    );
    expect(() => checkAddress("10.0.0.1", "webhook", { settings: strict })).toThrow(/private network address, which Gantry does not send webhooks to; .*OUTBOUND_ALLOW_PRIVATE=true/);
    expect(() => checkAddress("169.254.169.254", "device", { settings: strict })).toThrow(/cloud metadata address, which Gantry does not connect to devices at; .*exactly this address with OUTBOUND_ALLOW_CIDRS/);
    const error = (() => {
      try {
        checkAddress("fe80::1", "discovery", { settings: strict });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(OutboundRefusedError);
    expect(error).toMatchObject({ code: "BAD_REQUEST", kind: "link-local", purpose: "discovery" });
  });
});

describe("checkHost", () => {
  it("reads odd spellings of an address as the OS does, and checks what they resolve to", async () => {
    for (const host of ["0x7f000001", "2130706433", "127.1", "0177.0.0.1", "localhost"]) {
      await expect(checkHost(host, "device", { settings: strict })).rejects.toThrow(`${host} resolves to a loopback address`);
    }
    for (const host of ["[::1]", "::1", "::ffff:127.0.0.1", "127.0.0.1", "0.0.0.0"]) {
      await expect(checkHost(host, "webhook", { settings: strict })).rejects.toThrow(`${host} is a loopback address`);
    }
  });

  it("returns the address to connect to when it is allowed", async () => {
    await expect(checkHost("0x7f000001", "device", { settings: { ...strict, allowLoopback: true } })).resolves.toMatchObject({ address: "127.0.0.1", family: 4 });
    await expect(checkHost("[::1]", "device", { settings: { ...strict, allowLoopback: true } })).resolves.toMatchObject({ address: "::1", family: 6 });
    await expect(checkHost("192.168.7.7", "device", { settings: strict })).resolves.toMatchObject({ address: "192.168.7.7" });
    // A link-local device, once its range is allowed, keeps its interface.
    await expect(checkHost("fe80::1%lo", "device", { settings: { ...strict, allowedCidrs: [parseCidr("fe80::/10")!] } })).resolves.toMatchObject({ address: "fe80::1%lo", family: 6 });
  });

  it("says so when a name does not resolve", async () => {
    await expect(checkHost("no-such-host.invalid", "device", { settings: strict })).rejects.toThrow("The host name no-such-host.invalid does not resolve; check the address");
  });
});
