import { describe, expect, it } from "vitest";
import { formatCalibration } from "../../agent/hardware/calibration";
import { ROBOT_TYPES } from "./hardware.schemas";
import { buildWizardCalibration } from "./wizard-calibration";

const homingOffsets = { shoulder_pan: 1023, shoulder_lift: -12, elbow_flex: 3047, wrist_flex: 40, wrist_roll: -1000, gripper: 7 };
const ranges = { shoulder_pan: { min: 0, max: 4095 }, shoulder_lift: { min: 1100, max: 3000 }, elbow_flex: { min: 900, max: 3200 }, wrist_flex: { min: 800, max: 3300 }, wrist_roll: { min: 0, max: 4095 }, gripper: { min: 2000, max: 2900 } };

/** What LeRobot's koch_leader calibrate() saves for that state (json.dump, indent 4, no trailing newline). */
const KOCH_LEADER_FILE = `{
    "shoulder_pan": {
        "id": 1,
        "drive_mode": 0,
        "homing_offset": 1023,
        "range_min": 0,
        "range_max": 4095
    },
    "shoulder_lift": {
        "id": 2,
        "drive_mode": 0,
        "homing_offset": -12,
        "range_min": 1100,
        "range_max": 3000
    },
    "elbow_flex": {
        "id": 3,
        "drive_mode": 1,
        "homing_offset": 3047,
        "range_min": 900,
        "range_max": 3200
    },
    "wrist_flex": {
        "id": 4,
        "drive_mode": 0,
        "homing_offset": 40,
        "range_min": 800,
        "range_max": 3300
    },
    "wrist_roll": {
        "id": 5,
        "drive_mode": 0,
        "homing_offset": -1000,
        "range_min": 0,
        "range_max": 4095
    },
    "gripper": {
        "id": 6,
        "drive_mode": 0,
        "homing_offset": 7,
        "range_min": 2000,
        "range_max": 2900
    }
}`;

describe("the calibration the wizard saves", () => {
  it("is LeRobot's koch_leader file byte for byte: elbow_flex has drive_mode 1", () => {
    const { motors, inverted } = ROBOT_TYPES.koch_leader;
    const driveModes = { shoulder_pan: 0, shoulder_lift: 0, elbow_flex: 1, wrist_flex: 0, wrist_roll: 0, gripper: 0 };
    expect(formatCalibration(buildWizardCalibration({ motors, homingOffsets, ranges, driveModes, inverted }))).toBe(KOCH_LEADER_FILE);
    // An agent that did not answer drive modes: the arm type decides.
    expect(formatCalibration(buildWizardCalibration({ motors, homingOffsets, ranges, inverted }))).toBe(KOCH_LEADER_FILE);
  });

  it("gives every motor of the other arms drive_mode 0, as LeRobot's koch_follower and so_* do", () => {
    for (const type of ["koch_follower", "so101_follower", "so101_leader", "so100_follower", "so100_leader"] as const) {
      const { motors, inverted } = ROBOT_TYPES[type];
      const cal = buildWizardCalibration({ motors, homingOffsets, ranges, inverted });
      expect(Object.values(cal).map((c) => c.drive_mode)).toEqual([0, 0, 0, 0, 0, 0]);
    }
  });
});
