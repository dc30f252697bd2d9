import { describe, expect, it } from "vitest";
import { normalizeJoint, normalizeJoints } from "./joint-units";

// LeRobot's MotorsBus._normalize applies drive_mode only where apply_drive_mode is set: the
// Feetech bus reverses a drive_mode 1 joint in software, the Dynamixel bus leaves it to the motor.
const straight = { drive_mode: 0, range_min: 1000, range_max: 3000 };
const reversed = { ...straight, drive_mode: 1 };

describe("LeRobot's joint units", () => {
  it("reverses a drive_mode 1 joint on a Feetech bus, in −100..100 and in 0..100", () => {
    expect(normalizeJoint(1500, straight, "range_m100_100", { protocol: "feetech" })).toBe(-50);
    expect(normalizeJoint(1500, reversed, "range_m100_100", { protocol: "feetech" })).toBe(50);
    expect(normalizeJoint(1500, straight, "range_0_100", { protocol: "feetech" })).toBe(25);
    expect(normalizeJoint(1500, reversed, "range_0_100", { protocol: "feetech" })).toBe(75);
  });

  it("leaves a drive_mode 1 joint as the motor reports it on a Dynamixel bus (the motor reverses itself)", () => {
    expect(normalizeJoint(1500, reversed, "range_m100_100", { protocol: "dynamixel" })).toBe(-50);
    expect(normalizeJoint(1500, reversed, "range_0_100", { protocol: "dynamixel" })).toBe(25);
  });

  it("holds readings outside the range at its edge, and ignores drive_mode in degrees on both buses", () => {
    expect(normalizeJoint(500, reversed, "range_m100_100", { protocol: "dynamixel" })).toBe(-100);
    expect(normalizeJoint(3500, reversed, "range_m100_100", { protocol: "feetech" })).toBe(-100);
    expect(normalizeJoint(3047, reversed, "degrees", { protocol: "feetech" })).toBeCloseTo(92.04, 2);
    expect(normalizeJoint(3047, reversed, "degrees", { protocol: "dynamixel" })).toBeCloseTo(92.04, 2);
  });

  it("normalises an arm, the gripper 0..100, a motor without calibration null", () => {
    const calibration = { elbow_flex: { id: 3, homing_offset: 0, ...reversed }, gripper: { id: 6, homing_offset: 0, ...straight } };
    expect(normalizeJoints(["elbow_flex", "gripper", "wrist_roll"], [2500, 2000, 2047], calibration, { protocol: "feetech" })).toEqual([-50, 50, null]);
    expect(normalizeJoints(["elbow_flex", "gripper", "wrist_roll"], [2500, 2000, 2047], calibration, { protocol: "dynamixel" })).toEqual([50, 50, null]);
  });
});
