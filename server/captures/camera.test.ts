import { describe, expect, it } from "vitest";
import { cameraParamSchema, cameraSchema, frameQuery } from "./captures.schemas";

// The capture camera as a sender states it: checked, its rotation normalised.

const good = { position: [0.1, -0.2, 1.5], rotation: [0, 0, 0, 3], fx: 600, fy: 610, cx: 320, cy: 240, width: 640, height: 480 };

describe("the camera in the capture protocol", () => {
  it("takes a pose and pinhole intrinsics, and keeps the rotation as a unit quaternion", () => {
    expect(cameraSchema.parse(good).rotation).toEqual([0, 0, 0, 1]);
    expect(frameQuery.parse({ t: "1764849600040", camera: JSON.stringify(good) }).camera?.fx).toBe(600);
  });

  it("refuses what cannot be a camera, saying which field and why", () => {
    const issue = (value: unknown) => {
      const r = cameraParamSchema.safeParse(typeof value === "string" ? value : JSON.stringify(value));
      return r.success ? "accepted" : r.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ");
    };
    expect(issue("{fx: 600")).toMatch(/must be URL-encoded JSON: \{position/);
    expect(issue({ ...good, fx: -1 })).toMatch(/fx fx is the focal length in pixels and must be positive/);
    expect(issue({ ...good, rotation: [0, 0, 0, 0] })).toMatch(/rotation camera rotation must be a quaternion/);
    expect(issue({ ...good, position: [0, 0, 5000] })).toMatch(/within ±2048/);
    expect(issue({ ...good, width: 0 })).toMatch(/^width/);
    expect(issue({ ...good, k1: 0.1 })).toMatch(/k1/);
    expect(issue({ ...good, rotation: [0, 0, 1] })).toMatch(/^rotation/);
    expect(issue("x".repeat(3000))).toMatch(/at most 2 KB/);
  });
});
