import { describe, expect, it } from "vitest";
import { bestClustering, pairwiseDistances, principalMap, thin } from "./vector-math";

const v = (...xs: number[]) => Float64Array.from(xs);

describe("vector tools for comparing episodes", () => {
  it("finds three well-apart groups, their sizes and a silhouette near 1; none in two points", () => {
    const groups = [v(0, 0), v(0.1, 0), v(0, 0.1), v(10, 10), v(10.1, 10), v(-10, 10), v(-10, 10.1), v(-10.1, 10)];
    const found = bestClustering(groups)!;
    expect(found.k).toBe(3);
    expect([...found.sizes].sort()).toEqual([2, 3, 3]);
    expect(found.silhouette).toBeGreaterThan(0.95);
    expect(bestClustering(groups)).toEqual(found); // the same on every run
    expect(bestClustering([v(0), v(1)])).toBeNull();
  });

  it("gives a low silhouette to points with no groups in them", () => {
    const line = Array.from({ length: 20 }, (_, i) => v(i, 0));
    expect(bestClustering(line)!.silhouette).toBeLessThan(0.7);
    expect(bestClustering(Array.from({ length: 5 }, () => v(1, 1)))!.silhouette).toBe(0);
  });

  it("maps points on a slanted line onto the first axis, in order, with the second near 0", () => {
    const points = [0, 1, 2, 5, 9].map((t) => v(t, 2 * t, 5));
    const map = principalMap(points);
    const xs = map.map(([x]) => x);
    const ordered = xs[0] < xs[4] ? xs : xs.map((x) => -x);
    expect(ordered).toEqual([...ordered].sort((a, b) => a - b));
    expect(Math.abs(ordered[4] - ordered[0])).toBeCloseTo(9 * Math.sqrt(5), 6);
    for (const [, y] of map) expect(Math.abs(y)).toBeLessThan(1e-9);
    expect(principalMap([v(3, 3)])).toEqual([[0, 0]]);
    expect(principalMap([])).toEqual([]);
  });

  it("thins long lists evenly before comparing every pair", () => {
    expect(thin([1, 2, 3], 5)).toEqual([1, 2, 3]);
    expect(thin(Array.from({ length: 10 }, (_, i) => i), 5)).toEqual([0, 2, 4, 6, 8]);
    expect([...pairwiseDistances([v(0, 0), v(3, 4), v(0, 1)])]).toEqual([5, 1, Math.sqrt(18)]);
  });
});
