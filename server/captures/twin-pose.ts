import type { Calibration } from "../hardware/calibration.schemas";
import { appliesDriveMode, jointNormMode, type JointBus } from "../hardware/joint-units";

// LeRobot's joint units → the SO-101 URDF's radians. The URDF (so101_new_calib) has its zero
// pose where LeRobot's calibration puts the middle of each joint's range, so a body joint in
// degrees (LeRobot's use_degrees) is that angle; in −100..100 it is first taken back to encoder
// counts across the calibrated range, then to degrees about its middle (4096 counts a turn).
// The gripper's 0..100 spans the URDF's own gripper limits.

export const TWIN_JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"] as const;
/** The URDF's gripper limits (radians): closed and fully open. */
const GRIPPER = { lower: -0.174533, upper: 1.74533 };
const COUNTS_PER_TURN = 4096;

export interface TwinUnits {
  calibration?: Calibration | null;
  useDegrees?: boolean;
  /** The arm's bus: a drive_mode 1 joint was reversed in software only where LeRobot does that (Feetech). */
  protocol?: JointBus;
}

export function lerobotToRadians(motor: string, value: number, { calibration, useDegrees = false, protocol = "feetech" }: TwinUnits = {}): number | null {
  if (!Number.isFinite(value)) return null;
  const mode = jointNormMode(motor, { useDegrees });
  if (mode === "range_0_100") return GRIPPER.lower + (Math.min(100, Math.max(0, value)) / 100) * (GRIPPER.upper - GRIPPER.lower);
  if (mode === "degrees") return (value * Math.PI) / 180;
  const cal = calibration?.[motor];
  if (!cal) return null;
  const norm = cal.drive_mode && appliesDriveMode(protocol) ? -value : value;
  const raw = cal.range_min + ((norm + 100) / 200) * (cal.range_max - cal.range_min);
  const degrees = ((raw - (cal.range_min + cal.range_max) / 2) * 360) / (COUNTS_PER_TURN - 1);
  return (degrees * Math.PI) / 180;
}

/** A pose for the twin from one reading in LeRobot's units (motor order as `motors`). */
export function twinPose(motors: string[], values: (number | null)[], opts: TwinUnits = {}): Record<string, number> {
  const pose: Record<string, number> = {};
  motors.forEach((motor, i) => {
    const v = values[i];
    const rad = v == null ? null : lerobotToRadians(motor, v, opts);
    if (rad !== null) pose[motor] = rad;
  });
  return pose;
}

/** One reading as the twin's angles in TWIN_JOINTS order (radians); null unless it gives every one. */
export function twinAngles(motors: string[], values: (number | null)[], opts: TwinUnits = {}): number[] | null {
  const pose = twinPose(motors, values, opts);
  const angles = TWIN_JOINTS.map((j) => pose[j]);
  return angles.every((a) => a !== undefined) ? (angles as number[]) : null;
}

/** The URDF's joint limits (radians), for recordings in −100..100 without their calibration. */
export const TWIN_LIMITS: Record<string, { lower: number; upper: number }> = {
  shoulder_pan: { lower: -1.91986, upper: 1.91986 },
  shoulder_lift: { lower: -1.74533, upper: 1.74533 },
  elbow_flex: { lower: -1.69, upper: 1.69 },
  wrist_flex: { lower: -1.65806, upper: 1.65806 },
  wrist_roll: { lower: -2.74385, upper: 2.84121 },
  gripper: GRIPPER,
};

/** A recorded column's joint, e.g. `shoulder_pan.pos` → `shoulder_pan`; null when it is not one of the twin's. */
export function twinJointOf(column: string): string | null {
  const base = column.replace(/\.(pos|position)$/, "").replace(/^(main|left|right)_/, "");
  return (TWIN_JOINTS as readonly string[]).includes(base) ? base : null;
}

/**
 * Poses for a recorded episode (its state columns, frame by frame). Degrees are told from
 * −100..100 by the values themselves (a body joint beyond ±100 is in degrees); −100..100
 * without the arm's calibration is spread across the URDF's limits, which is close, not exact.
 */
export function episodeTwinPoses(columns: string[], frames: number[][]): { poses: Record<string, number>[]; units: "degrees" | "range" } {
  const joints = columns.map(twinJointOf);
  const isDegrees = frames.some((row) => row.some((v, i) => joints[i] && joints[i] !== "gripper" && Math.abs(v) > 100.5));
  const poses = frames.map((row) => {
    const pose: Record<string, number> = {};
    row.forEach((v, i) => {
      const joint = joints[i];
      if (!joint || !Number.isFinite(v)) return;
      if (joint === "gripper") pose[joint] = lerobotToRadians("gripper", v)!;
      else if (isDegrees) pose[joint] = (v * Math.PI) / 180;
      else {
        const { lower, upper } = TWIN_LIMITS[joint]!;
        pose[joint] = lower + ((Math.min(100, Math.max(-100, v)) + 100) / 200) * (upper - lower);
      }
    });
    return pose;
  });
  return { poses, units: isDegrees ? "degrees" : "range" };
}
