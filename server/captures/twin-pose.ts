import type { Calibration } from "../hardware/calibration.schemas";
import { jointNormMode } from "../hardware/joint-units";

// LeRobot's joint units → the SO-101 URDF's radians. The URDF (so101_new_calib) has its zero
// pose where LeRobot's calibration puts the middle of each joint's range, so a body joint in
// degrees (LeRobot's use_degrees) is that angle; in −100..100 it is first taken back to encoder
// counts across the calibrated range, then to degrees about its middle (4096 counts a turn).
// The gripper's 0..100 spans the URDF's own gripper limits.

export const TWIN_JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"] as const;
/** The URDF's gripper limits (radians): closed and fully open. */
const GRIPPER = { lower: -0.174533, upper: 1.74533 };
const COUNTS_PER_TURN = 4096;

export function lerobotToRadians(motor: string, value: number, { calibration, useDegrees = false }: { calibration?: Calibration | null; useDegrees?: boolean } = {}): number | null {
  if (!Number.isFinite(value)) return null;
  const mode = jointNormMode(motor, { useDegrees });
  if (mode === "range_0_100") return GRIPPER.lower + (Math.min(100, Math.max(0, value)) / 100) * (GRIPPER.upper - GRIPPER.lower);
  if (mode === "degrees") return (value * Math.PI) / 180;
  const cal = calibration?.[motor];
  if (!cal) return null;
  const norm = cal.drive_mode ? -value : value;
  const raw = cal.range_min + ((norm + 100) / 200) * (cal.range_max - cal.range_min);
  const degrees = ((raw - (cal.range_min + cal.range_max) / 2) * 360) / (COUNTS_PER_TURN - 1);
  return (degrees * Math.PI) / 180;
}

/** A pose for the twin from one reading in LeRobot's units (motor order as `motors`). */
export function twinPose(motors: string[], values: (number | null)[], opts: { calibration?: Calibration | null; useDegrees?: boolean } = {}): Record<string, number> {
  const pose: Record<string, number> = {};
  motors.forEach((motor, i) => {
    const v = values[i];
    const rad = v == null ? null : lerobotToRadians(motor, v, opts);
    if (rad !== null) pose[motor] = rad;
  });
  return pose;
}
