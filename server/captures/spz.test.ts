import zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { parsePly, SPLAT_BLOCK, writePly } from "./ply";
import { convertPlyToSpz, decodeSpz, encodeSpz, packSpz, SPZ_MAGIC } from "./spz";
import { randomCloud } from "./test-clouds";

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

function expectClose(name: string, a: ArrayLike<number>, b: ArrayLike<number>, tol: number) {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  expect(worst, name).toBeLessThanOrEqual(tol);
}

describe("SPZ round trip", () => {
  for (const version of [2, 3] as const) {
    for (const shDegree of [0, 1, 2, 3]) {
      it(`keeps every attribute within quantisation (v${version}, SH ${shDegree})`, async () => {
        const cloud = randomCloud(500, shDegree, 7 + shDegree);
        const parsed = parsePly(writePly(cloud));
        const decoded = await decodeSpz(encodeSpz(parsed, { version }));
        expect(decoded).toMatchObject({ count: 500, shDegree, version, fractionalBits: 12 });
        expectClose("positions", decoded.positions, cloud.positions, 0.5 / 4096 + 1e-6);
        expectClose("colours", decoded.colors, cloud.colors.map((c) => Math.min(Math.max(c, -0.5 / 0.15), 0.5 / 0.15)), 0.5 / 255 / 0.15 + 1e-6);
        expectClose("alphas", decoded.alphas.map(sigmoid), cloud.alphas.map(sigmoid), 0.5 / 255 + 1e-5);
        expectClose("scales", decoded.scales, cloud.scales, 0.5 / 16 + 1e-6);
        // SH: 5-bit buckets (±4/128) for degree 1, 4-bit (±8/128) above, plus rounding.
        const restN = [0, 3, 8, 15][shDegree];
        for (let i = 0; i < decoded.sh.length; i++) {
          const j = Math.floor(i / 3) % restN;
          expect(Math.abs(decoded.sh[i] - Math.min(cloud.sh[i], 127 / 128)), `sh ${i}`).toBeLessThanOrEqual((j < 3 ? 4.5 : 8.5) / 128);
        }
        // Quaternions compared up to sign by |dot|.
        let worstDot = 1;
        for (let i = 0; i < 500; i++) {
          const q = cloud.rotations.subarray(i * 4, i * 4 + 4);
          const len = Math.hypot(...q);
          const d = decoded.rotations.subarray(i * 4, i * 4 + 4);
          worstDot = Math.min(worstDot, Math.abs(q[0] * d[0] + q[1] * d[1] + q[2] * d[2] + q[3] * d[3]) / len);
        }
        expect(worstDot).toBeGreaterThan(version === 3 ? 0.999 : 0.99);
      });
    }
  }

  it("is at most an eighth of the PLY at SH degree 3", () => {
    const ply = writePly(randomCloud(20_000, 3, 3));
    expect(encodeSpz(parsePly(ply)).length).toBeLessThanOrEqual(ply.length / 8);
  });
});

describe("PLY straight to SPZ", () => {
  // The header's length decides whether the body's floats are aligned in memory: both ways,
  // across block boundaries, the bytes are those of the cloud parsed and packed.
  for (const comment of ["", "comment x\n", "comment xy\n", "comment xyz\n"]) {
    it(`packs the same planes as the parsed cloud (header ${comment.length} bytes longer)`, async () => {
      const cloud = randomCloud(SPLAT_BLOCK * 2 + 17, 2, 11);
      const plain = writePly(cloud);
      const ply = Buffer.concat([plain.subarray(0, 4), Buffer.from(comment, "latin1"), plain.subarray(4)]);
      const converted = await convertPlyToSpz(ply);
      expect(converted).toMatchObject({ count: cloud.count, shDegree: 2 });
      expect(zlib.gunzipSync(converted.spz).equals(packSpz(parsePly(ply)))).toBe(true);
      const xs = Array.from({ length: cloud.count }, (_, i) => cloud.positions[i * 3]!);
      expect(converted.bounds.min[0]).toBe(Math.min(...xs));
      expect(converted.bounds.max[0]).toBe(Math.max(...xs));
      expect((await decodeSpz(converted.spz)).count).toBe(cloud.count);
    });
  }

  it("refuses a non-finite value or a splat out of range, naming it", async () => {
    const cloud = randomCloud(SPLAT_BLOCK + 10, 1, 12);
    cloud.sh[(SPLAT_BLOCK + 3) * 9 + 4] = NaN;
    await expect(convertPlyToSpz(writePly(cloud))).rejects.toThrow(new RegExp(`Splat ${SPLAT_BLOCK + 3} of the PLY holds a NaN or infinite value`));
    const far = randomCloud(10, 0, 13);
    far.positions[7] = 3000;
    await expect(convertPlyToSpz(writePly(far))).rejects.toThrow(/Splat 2 lies at 3000, outside the ±2048 range/);
  });
});

describe("SPZ layout against the reference's documented bytes", () => {
  it("decodes a hand-built one-splat v3 file", async () => {
    const raw = Buffer.alloc(16 + 9 + 1 + 3 + 3 + 4 + 9);
    raw.writeUInt32LE(0x5053474e, 0);
    raw.writeUInt32LE(3, 4);
    raw.writeUInt32LE(1, 8);
    raw[12] = 1; // SH degree
    raw[13] = 12; // fractional bits
    raw[14] = 1; // antialiased
    let o = 16;
    for (const v of [4096, -2048, 1]) { raw.writeIntLE(v, o, 3); o += 3; } // 1, -0.5, 1/4096
    raw[o++] = 255; // alpha sigmoid ~1
    for (const c of [128, 0, 255]) raw[o++] = c;
    for (const s of [160, 0, 16]) raw[o++] = s; // 0, -10, -9
    // identity rotation: largest is w (index 3), others zero → comp = 3 << 30
    raw.writeUInt32LE((3 << 30) >>> 0, o); o += 4;
    for (let k = 0; k < 9; k++) raw[o++] = k === 0 ? 192 : 128;
    const d = await decodeSpz(zlib.gzipSync(raw));
    expect(d).toMatchObject({ count: 1, shDegree: 1, version: 3, fractionalBits: 12, antialiased: true });
    expect(Array.from(d.positions)).toEqual([1, -0.5, 1 / 4096]);
    expect(Array.from(d.scales)).toEqual([0, -10, -9]);
    expect(Array.from(d.rotations)).toEqual([0, 0, 0, 1]);
    expect(d.colors[0]).toBeCloseTo((128 / 255 - 0.5) / 0.15, 6);
    expect(d.sh[0]).toBe(0.5);
    expect(SPZ_MAGIC).toBe(0x5053474e);
  });

  it("writes the header and planes in the reference's order", () => {
    const cloud = randomCloud(2, 0, 5);
    cloud.positions.set([1, 2, 3, -1, -2, -3]);
    const raw = zlib.gunzipSync(encodeSpz(cloud, { version: 2 }));
    expect(raw.readUInt32LE(0)).toBe(0x5053474e);
    expect(raw.readUInt32LE(4)).toBe(2);
    expect(raw.readUInt32LE(8)).toBe(2);
    expect(raw.readIntLE(16, 3)).toBe(4096);
    expect(raw.readIntLE(16 + 15, 3)).toBe(-3 * 4096);
    expect(raw.length).toBe(16 + 2 * (9 + 1 + 3 + 3 + 3));
  });
});

describe("SPZ refused", () => {
  const header = (version: number, count: number, sh = 0) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(0x5053474e, 0); h.writeUInt32LE(version, 4); h.writeUInt32LE(count, 8); h[12] = sh; h[13] = 12;
    return h;
  };
  it("refuses a decompression bomb before inflating it all", async () => {
    const bomb = zlib.gzipSync(Buffer.concat([header(3, 1), Buffer.alloc(64 * 1024 * 1024)]));
    await expect(decodeSpz(bomb)).rejects.toThrow(/more than the 36 bytes its header implies/);
  });
  it("refuses version 4", async () => {
    await expect(decodeSpz(zlib.gzipSync(Buffer.concat([header(4, 1), Buffer.alloc(64)])))).rejects.toThrow(/version 4; only versions 2 and 3/);
  });
  it("refuses a header claiming too many splats", async () => {
    await expect(decodeSpz(zlib.gzipSync(header(3, 2 ** 31)))).rejects.toThrow(/more than the limit/);
  });
  it("refuses a short body, bad magic and non-gzip", async () => {
    await expect(decodeSpz(zlib.gzipSync(Buffer.concat([header(3, 10), Buffer.alloc(5)])))).rejects.toThrow(/cut short/);
    await expect(decodeSpz(zlib.gzipSync(Buffer.alloc(32)))).rejects.toThrow(/not an SPZ/);
    await expect(decodeSpz(Buffer.from("hello"))).rejects.toThrow(/gzip/);
  });
});
