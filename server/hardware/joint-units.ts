import type { Calibration } from "./calibration.schemas";

// LeRobot's units for a joint, from its calibration (motors_bus.py `_normalize`): body joints
// −100..100 across their recorded range (or degrees about the range's middle), the gripper
// 0..100. A raw reading outside the range is held at its edge, as LeRobot does. Pure: the
// agent, the portal and the pages share it.

export type JointNormMode = "range_m100_100" | "range_0_100" | "degrees";

/** LeRobot's SO-100/SO-101/Koch choice: the gripper 0..100, the rest −100..100 (or degrees). */
export function jointNormMode(motor: string, { useDegrees = false }: { useDegrees?: boolean } = {}): JointNormMode {
  if (motor === "gripper") return "range_0_100";
  return useDegrees ? "degrees" : "range_m100_100";
}

export function normalizeJoint(raw: number, cal: { drive_mode: number; range_min: number; range_max: number }, mode: JointNormMode, resolution = 4096): number {
  const { range_min: min, range_max: max } = cal;
  if (mode === "degrees") return ((raw - (min + max) / 2) * 360) / (resolution - 1);
  if (max === min) return 0;
  const bounded = Math.min(max, Math.max(min, raw));
  if (mode === "range_m100_100") {
    const norm = ((bounded - min) / (max - min)) * 200 - 100;
    return cal.drive_mode ? -norm : norm;
  }
  const norm = ((bounded - min) / (max - min)) * 100;
  return cal.drive_mode ? 100 - norm : norm;
}

/** Each motor's reading in LeRobot's units, in the order of `motors`; null when a motor has no calibration. */
export function normalizeJoints(motors: string[], raw: number[], calibration: Calibration, opts: { useDegrees?: boolean } = {}): (number | null)[] {
  return motors.map((name, i) => {
    const cal = calibration[name];
    const value = raw[i];
    return cal && value !== undefined ? normalizeJoint(value, cal, jointNormMode(name, opts)) : null;
  });
}
