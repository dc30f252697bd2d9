import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSplats, startSparkPage, type SparkPage } from "../../tests/helpers/spark-page";
import { writePly } from "./ply";
import { convertPlyToSpz } from "./spz";
import { randomCloud } from "./test-clouds";

// Our SPZ read back by Spark's own parser (the viewer's) in Chromium, splat by splat, against
// the source PLY read by the same parser: they differ by SPZ's quantisation and no more.

let spark: SparkPage;
const cloud = randomCloud(3000, 3, 21);
const ply = writePly(cloud);
let spzV3: Buffer;
let spzV2: Buffer;

beforeAll(async () => {
  spzV3 = (await convertPlyToSpz(ply)).spz;
  spzV2 = (await convertPlyToSpz(ply, { version: 2 })).spz;
  spark = await startSparkPage({ "scene.ply": ply, "scene.spz": spzV3, "scene-v2.spz": spzV2 });
}, 60_000);
afterAll(() => spark?.close());

const worst = (a: number[], b: number[], f: (x: number, y: number) => number = (x, y) => Math.abs(x - y)) => a.reduce((m, x, i) => Math.max(m, f(x, b[i]!)), 0);

describe("our SPZ through Spark's reader", () => {
  for (const name of ["scene.spz", "scene-v2.spz"]) {
    it(`matches the PLY splat by splat within quantisation (${name})`, async () => {
      const tab = await spark.open();
      const fromPly = await readSplats(tab, `${spark.base}/scene.ply`);
      const fromSpz = await readSplats(tab, `${spark.base}/${name}`);
      await tab.close();
      expect(fromSpz.count).toBe(cloud.count);
      expect(fromPly.count).toBe(cloud.count);
      // Same axes: no flip between the PLY and our SPZ. Positions: 1/4096 fixed point, plus Spark's float16.
      expect(worst(fromSpz.centers, fromPly.centers, (x, y) => Math.abs(x - y) / Math.max(1, Math.abs(y)))).toBeLessThan(0.5 / 4096 + 2e-3);
      // Colours and opacity: 8 bits each in SPZ and in Spark.
      expect(worst(fromSpz.colors, fromPly.colors)).toBeLessThan(3 / 255);
      expect(worst(fromSpz.opacities, fromPly.opacities)).toBeLessThan(3 / 255);
      // Scales, as log ratios: SPZ steps the log scale by 1/16, and Spark keeps scales as 8-bit
      // logarithms too, so both reads also carry its own step (about 0.08).
      expect(worst(fromSpz.scales, fromPly.scales, (x, y) => Math.abs(Math.log(x / y)))).toBeLessThan(1 / 32 + 0.1);
      // Rotations up to sign, by |dot|.
      let dot = 1;
      for (let i = 0; i < cloud.count; i++) {
        const q = fromSpz.quaternions.slice(i * 4, i * 4 + 4), p = fromPly.quaternions.slice(i * 4, i * 4 + 4);
        dot = Math.min(dot, Math.abs(q[0]! * p[0]! + q[1]! * p[1]! + q[2]! * p[2]! + q[3]! * p[3]!));
      }
      expect(dot).toBeGreaterThan(name === "scene.spz" ? 0.99 : 0.98);
    });
  }
});
