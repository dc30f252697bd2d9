import type { Calibration } from "./calibration.schemas";

// The calibration the set-up wizard saves, from its two steps (homing, then the range of
// motion), as LeRobot's calibrate() builds it: each motor's id, the drive_mode the homing step
// set (koch_leader's elbow_flex is 1, every other motor of the arms Gantry sets up 0), the homing
// offset, and the recorded range.

export function buildWizardCalibration({
  motors,
  homingOffsets,
  ranges,
  driveModes,
  inverted = [],
}: {
  motors: readonly { name: string; id: number }[];
  homingOffsets: Record<string, number>;
  ranges: Record<string, { min: number; max: number }>;
  /** What the homing step answered; an agent from before it answered them falls back to `inverted`. */
  driveModes?: Record<string, number>;
  inverted?: readonly string[];
}): Calibration {
  return Object.fromEntries(
    motors.map((m) => [
      m.name,
      {
        id: m.id,
        drive_mode: driveModes?.[m.name] ?? (inverted.includes(m.name) ? 1 : 0),
        homing_offset: homingOffsets[m.name] ?? 0,
        range_min: ranges[m.name]?.min ?? 0,
        range_max: ranges[m.name]?.max ?? 4095,
      },
    ]),
  );
}
