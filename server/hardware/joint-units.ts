import type { Calibration } from "./calibration.schemas";

// LeRobot's units for a joint, from its calibration (motors_bus.py `_normalize`): body joints
// −100..100 across their recorded range (or degrees about the range's middle), the gripper
// 0..100. A raw reading outside the range is held at its edge, as LeRobot does. Pure: the
// agent, the portal and the pages share it.
//
// drive_mode is applied here only on a Feetech bus (LeRobot's `apply_drive_mode`: True for
// FeetechMotorsBus, False for DynamixelMotorsBus). A Dynamixel motor keeps its direction in its
// own Drive_Mode register and already reports the reversed position, so reversing it again in
// software would turn it back.

export type JointNormMode = "range_m100_100" | "range_0_100" | "degrees";
export type JointBus = "feetech" | "dynamixel";

/** LeRobot's SO-100/SO-101/Koch choice: the gripper 0..100, the rest −100..100 (or degrees). */
export function jointNormMode(motor: string, { useDegrees = false }: { useDegrees?: boolean } = {}): JointNormMode {
  if (motor === "gripper") return "range_0_100";
  return useDegrees ? "degrees" : "range_m100_100";
}

/** Whether LeRobot reverses a drive_mode 1 joint in software on this bus. */
export function appliesDriveMode(protocol: JointBus): boolean {
  return protocol === "feetech";
}

export function normalizeJoint(raw: number, cal: { drive_mode: number; range_min: number; range_max: number }, mode: JointNormMode, { protocol, resolution = 4096 }: { protocol: JointBus; resolution?: number }): number {
  const { range_min: min, range_max: max } = cal;
  if (mode === "degrees") return ((raw - (min + max) / 2) * 360) / (resolution - 1);
  if (max === min) return 0;
  const isReversed = appliesDriveMode(protocol) && cal.drive_mode !== 0;
  const bounded = Math.min(max, Math.max(min, raw));
  if (mode === "range_m100_100") {
    const norm = ((bounded - min) / (max - min)) * 200 - 100;
    return isReversed ? -norm : norm;
  }
  const norm = ((bounded - min) / (max - min)) * 100;
  return isReversed ? 100 - norm : norm;
}

/** Each motor's reading in LeRobot's units, in the order of `motors`; null when a motor has no calibration. */
export function normalizeJoints(motors: string[], raw: number[], calibration: Calibration, opts: { protocol: JointBus; useDegrees?: boolean }): (number | null)[] {
  return motors.map((name, i) => {
    const cal = calibration[name];
    const value = raw[i];
    return cal && value !== undefined ? normalizeJoint(value, cal, jointNormMode(name, opts), { protocol: opts.protocol }) : null;
  });
}
