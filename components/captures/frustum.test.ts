import { describe, expect, it } from "vitest";
import { cameraSchema } from "@/server/captures/captures.schemas";
import { frustumSegments } from "./frustum";

// The frustum is drawn from the camera's pinhole intrinsics and camera-to-scene pose.

const points = (segments: Float32Array) => Array.from({ length: segments.length / 3 }, (_, i) => [segments[i * 3]!, segments[i * 3 + 1]!, segments[i * 3 + 2]!]);

describe("the camera frustum", () => {
  it("puts the image's corners at the depth along the camera's z, through its intrinsics", () => {
    const camera = cameraSchema.parse({ position: [1, 2, 3], rotation: [0, 0, 0, 2], fx: 500, fy: 500, cx: 320, cy: 240, width: 640, height: 480 });
    const p = points(frustumSegments(camera, 1));
    // Four rays from the centre, four edges, two tick lines: 20 points.
    expect(p).toHaveLength(20);
    expect(p[0]).toEqual([1, 2, 3]);
    // Top-left pixel (0, 0): x = −320/500, y = −240/500 at z = 1 (x right, y down, z forward).
    expect(p[1]![0]).toBeCloseTo(1 - 0.64, 6);
    expect(p[1]![1]).toBeCloseTo(2 - 0.48, 6);
    expect(p[1]![2]).toBeCloseTo(4, 6);
  });

  it("turns with the camera: a half turn about y looks down −z", () => {
    const camera = cameraSchema.parse({ position: [0, 0, 0], rotation: [0, 1, 0, 0], fx: 100, fy: 100, cx: 50, cy: 50, width: 100, height: 100 });
    const corners = points(frustumSegments(camera, 2)).filter((_, i) => i % 2 === 1).slice(0, 4);
    for (const c of corners) expect(c[2]).toBeCloseTo(-2, 6);
  });
});
