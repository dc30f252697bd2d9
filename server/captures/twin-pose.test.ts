import { describe, expect, it } from "vitest";
import { normalizeJoint, jointNormMode } from "../hardware/joint-units";
import { episodeTwinPoses, lerobotToRadians, twinJointOf, twinPose } from "./twin-pose";

const cal = { shoulder_pan: { id: 1, drive_mode: 0, homing_offset: 0, range_min: 900, range_max: 3100 }, gripper: { id: 6, drive_mode: 0, homing_offset: 0, range_min: 2030, range_max: 3400 } };

describe("the twin's pose from LeRobot's units", () => {
  it("puts the middle of a calibrated range at the URDF's zero, and a quarter turn of counts at π/2", () => {
    expect(lerobotToRadians("shoulder_pan", 0, { calibration: cal })).toBeCloseTo(0, 6);
    // −100..100 back to counts: 100 is range_max, 1100 counts above the middle.
    expect(lerobotToRadians("shoulder_pan", 100, { calibration: cal })).toBeCloseTo((1100 * 2 * Math.PI) / 4095, 6);
    // The round trip with LeRobot's own normalisation: counts → −100..100 → radians.
    const raw = 2047 + 1024;
    const v = normalizeJoint(raw, cal.shoulder_pan, jointNormMode("shoulder_pan"), { protocol: "feetech" });
    expect(lerobotToRadians("shoulder_pan", v, { calibration: cal })).toBeCloseTo(((raw - 2000) * 2 * Math.PI) / 4095, 6);
    // drive_mode 1 reverses the direction.
    expect(lerobotToRadians("shoulder_pan", 50, { calibration: { shoulder_pan: { ...cal.shoulder_pan, drive_mode: 1 } } })).toBeCloseTo(-lerobotToRadians("shoulder_pan", 50, { calibration: cal })!, 6);
    // …on Feetech only, as LeRobot: a Dynamixel motor reverses itself, so its reading is not.
    expect(lerobotToRadians("shoulder_pan", 50, { calibration: { shoulder_pan: { ...cal.shoulder_pan, drive_mode: 1 } }, protocol: "dynamixel" })).toBeCloseTo(lerobotToRadians("shoulder_pan", 50, { calibration: cal })!, 6);
  });

  it("takes degrees as they are, the gripper across its URDF limits, and needs a calibration for −100..100", () => {
    expect(lerobotToRadians("elbow_flex", 90, { useDegrees: true })).toBeCloseTo(Math.PI / 2, 6);
    expect(lerobotToRadians("gripper", 0)).toBeCloseTo(-0.174533, 6);
    expect(lerobotToRadians("gripper", 100)).toBeCloseTo(1.74533, 6);
    expect(lerobotToRadians("elbow_flex", 10)).toBeNull();
    expect(lerobotToRadians("shoulder_pan", Number.NaN, { calibration: cal })).toBeNull();
    expect(twinPose(["shoulder_pan", "elbow_flex", "gripper"], [0, 5, null], { calibration: cal })).toEqual({ shoulder_pan: expect.closeTo(0, 6) });
  });
});

describe("an episode on the twin", () => {
  it("reads LeRobot's state columns, in degrees or −100..100, and skips what is not a twin joint", () => {
    const columns = ["shoulder_pan.pos", "elbow_flex.pos", "gripper.pos", "base_x"];
    const degrees = episodeTwinPoses(columns, [[90, -120, 50, 3]]);
    expect(degrees.units).toBe("degrees");
    expect(degrees.poses[0]).toEqual({ shoulder_pan: expect.closeTo(Math.PI / 2, 6), elbow_flex: expect.closeTo((-120 * Math.PI) / 180, 6), gripper: expect.closeTo(-0.174533 + 0.5 * (1.74533 + 0.174533), 6) });
    const range = episodeTwinPoses(columns, [[0, 100, 0, 0], [-100, 0, 100, 0]]);
    expect(range.units).toBe("range");
    expect(range.poses[0]!.shoulder_pan).toBeCloseTo(0, 6);
    expect(range.poses[0]!.elbow_flex).toBeCloseTo(1.69, 6);
    expect(range.poses[1]!.shoulder_pan).toBeCloseTo(-1.91986, 6);
    expect(twinJointOf("main_wrist_roll")).toBe("wrist_roll");
    expect(twinJointOf("x")).toBeNull();
  });
});
