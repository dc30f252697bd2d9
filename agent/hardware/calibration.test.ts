import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { calibrationPath, computeHomingOffsets, formatCalibration, loadCalibration, parseCalibration, saveCalibration } from "./calibration";

// What LeRobot writes for an SO-101 follower (draccus.dump(indent=4) → json.dump): fields in
// MotorCalibration's order, motors in the robot's order, no newline at the end.
const LEROBOT_SO101 = `{
    "shoulder_pan": {
        "id": 1,
        "drive_mode": 0,
        "homing_offset": -1470,
        "range_min": 758,
        "range_max": 3292
    },
    "shoulder_lift": {
        "id": 2,
        "drive_mode": 0,
        "homing_offset": 153,
        "range_min": 812,
        "range_max": 3208
    },
    "elbow_flex": {
        "id": 3,
        "drive_mode": 0,
        "homing_offset": 1354,
        "range_min": 882,
        "range_max": 3079
    },
    "wrist_flex": {
        "id": 4,
        "drive_mode": 0,
        "homing_offset": -1044,
        "range_min": 909,
        "range_max": 3202
    },
    "wrist_roll": {
        "id": 5,
        "drive_mode": 0,
        "homing_offset": -1993,
        "range_min": 0,
        "range_max": 4095
    },
    "gripper": {
        "id": 6,
        "drive_mode": 0,
        "homing_offset": 1407,
        "range_min": 2031,
        "range_max": 3476
    }
}`;

describe("LeRobot calibration file", () => {
  it("reads and writes LeRobot's file byte for byte", () => {
    const cal = parseCalibration(LEROBOT_SO101);
    expect(Object.keys(cal)).toEqual(["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]);
    expect(formatCalibration(cal)).toBe(LEROBOT_SO101);
    // Built by hand with the fields in another order, the file still comes out in LeRobot's.
    const shuffled = Object.fromEntries(Object.entries(cal).map(([m, c]) => [m, { range_max: c.range_max, range_min: c.range_min, id: c.id, homing_offset: c.homing_offset, drive_mode: c.drive_mode }]));
    expect(formatCalibration(shuffled)).toBe(LEROBOT_SO101);
  });

  it("saves where LeRobot reads it, and loads it back", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-cal-"));
    try {
      const file = calibrationPath({ kind: "robots", type: "so101_follower", id: "arm1" }, { HF_LEROBOT_CALIBRATION: root });
      expect(() => loadCalibration(file)).toThrow(/No calibration at .*arm1\.json — calibrate the arm first/);
      saveCalibration(file, parseCalibration(LEROBOT_SO101));
      expect(fs.readFileSync(file, "utf8")).toBe(LEROBOT_SO101);
      expect(loadCalibration(file).gripper).toEqual({ id: 6, drive_mode: 0, homing_offset: 1407, range_min: 2031, range_max: 3476 });
      expect(fs.readdirSync(path.dirname(file))).toEqual(["arm1.json"]);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("names the motor and field of each problem", () => {
    const bad = JSON.parse(LEROBOT_SO101);
    bad.elbow_flex.homing_offset = "1354";
    bad.gripper.range_max = 5000;
    bad.wrist_flex.range_min = 3300;
    expect(() => parseCalibration(JSON.stringify(bad), "so101_follower/my_arm.json")).toThrow(/so101_follower\/my_arm\.json is not a LeRobot calibration: .*elbow_flex\.homing_offset: homing_offset must be a number.*gripper\.range_max: range_max must be 0\.\.4095/);
    expect(() => parseCalibration(JSON.stringify({ ...JSON.parse(LEROBOT_SO101), wrist_flex: { ...bad.wrist_flex } }))).toThrow(/wrist_flex: range_min 3300 is above range_max 3202/);
    expect(() => parseCalibration("{ not json")).toThrow(/not valid JSON/);
    expect(() => parseCalibration(JSON.stringify({ gripper: { id: 6 } }))).toThrow(/gripper\.drive_mode/);
  });

  it("lives where LeRobot looks for it", () => {
    const home = "/home/robot";
    expect(calibrationPath({ kind: "robots", type: "so101_follower", id: "my_arm" }, {}, home)).toBe("/home/robot/.cache/huggingface/lerobot/calibration/robots/so101_follower/my_arm.json");
    expect(calibrationPath({ kind: "teleoperators", type: "so101_leader", id: "lead" }, { HF_LEROBOT_CALIBRATION: "~/cal" }, home)).toBe("/home/robot/cal/teleoperators/so101_leader/lead.json");
    expect(calibrationPath({ kind: "robots", type: "koch_follower", id: "a" }, { HF_LEROBOT_HOME: "/data/lr" }, home)).toBe("/data/lr/calibration/robots/koch_follower/a.json");
    expect(calibrationPath({ kind: "robots", type: "koch_follower", id: "a" }, { HF_HOME: "/hf" }, home)).toBe("/hf/lerobot/calibration/robots/koch_follower/a.json");
    expect(() => calibrationPath({ kind: "robots", type: "so101_follower", id: "../../x" }, {}, home)).toThrow(/letters, digits/);
  });

  it("homes a joint to read 2047, and refuses one too far from mid-range, naming it", () => {
    expect(computeHomingOffsets({ shoulder_pan: 577, gripper: 3454, wrist_roll: 2047 })).toEqual({ shoulder_pan: -1470, gripper: 1407, wrist_roll: 0 });
    expect(computeHomingOffsets({ elbow_flex: 0 })).toEqual({ elbow_flex: -2047 });
    expect(() => computeHomingOffsets({ shoulder_pan: 2000, elbow_flex: 4095 })).toThrow(/elbow_flex reads 4095, which needs an offset of 2048.*±2047/);
  });
});
