import { describe, expect, it } from "vitest";
import { buildDynamixel, crc16, dynamixelPacket, parseDynamixel, parseDynamixelFrame } from "./dynamixel";
import { buildFeetech, feetechPacket, parseFeetech } from "./feetech";
import { decodeSignMagnitude, encodeSignMagnitude } from "./packets";

describe("Feetech protocol 0", () => {
  it("builds a ping with the checksum ~(id + len + instr)", () => {
    expect([...buildFeetech.ping(1)]).toEqual([0xff, 0xff, 0x01, 0x02, 0x01, 0xfb]);
    expect([...buildFeetech.read(1, 56, 2)]).toEqual([0xff, 0xff, 0x01, 0x04, 0x02, 0x38, 0x02, 0xbe]);
  });

  it("parses a status and says what is wrong with a bad one", () => {
    const ok = feetechPacket(3, 0, [0x00, 0x08]);
    expect(parseFeetech(ok)).toMatchObject({ kind: "ok", packet: { id: 3, error: 0, params: Buffer.from([0, 8]) }, consumed: ok.length });
    expect(parseFeetech(ok.subarray(0, 5))).toEqual({ kind: "incomplete" });
    const bad = Buffer.from(ok);
    bad[bad.length - 1] ^= 1;
    expect(parseFeetech(bad)).toMatchObject({ kind: "bad", reason: expect.stringMatching(/checksum/) });
    expect(parseFeetech(Buffer.from([0x12, 0x34, ...ok]))).toMatchObject({ kind: "bad", consumed: 2, reason: expect.stringMatching(/stray/) });
  });

  it("encodes Homing_Offset as sign-magnitude on bit 11", () => {
    expect(encodeSignMagnitude(-1470, 11)).toBe(0x800 | 1470);
    expect(decodeSignMagnitude(0x800 | 1470, 11)).toBe(-1470);
    expect(() => encodeSignMagnitude(2048, 11)).toThrow(/2047/);
  });
});

describe("Dynamixel protocol 2.0", () => {
  it("uses the SDK's CRC-16 (poly 0x8005)", () => {
    expect(crc16(Buffer.from("123456789"))).toBe(0xfee8);
    // The e-manual's ping of id 1.
    expect([...buildDynamixel.ping(1)]).toEqual([0xff, 0xff, 0xfd, 0x00, 0x01, 0x03, 0x00, 0x01, 0x19, 0x4e]);
  });

  it("stuffs FF FF FD in the payload and unstuffs it on the way back", () => {
    const packet = dynamixelPacket(2, 0x55, [0, 0xff, 0xff, 0xfd, 0x07]);
    expect(packet.subarray(8, 14).toString("hex")).toBe("00ffff" + "fdfd" + "07");
    const r = parseDynamixel(packet);
    expect(r).toMatchObject({ kind: "ok", packet: { id: 2, error: 0, params: Buffer.from([0xff, 0xff, 0xfd, 0x07]) } });
  });

  it("rejects a bad CRC and a non-status packet", () => {
    const ping = buildDynamixel.ping(1);
    expect(parseDynamixel(ping)).toMatchObject({ kind: "bad", reason: expect.stringMatching(/status/) });
    const bad = Buffer.from(dynamixelPacket(1, 0x55, [0, 1, 2]));
    bad[bad.length - 2] ^= 0xff;
    expect(parseDynamixelFrame(bad)).toMatchObject({ kind: "bad", reason: expect.stringMatching(/CRC/) });
  });
});
