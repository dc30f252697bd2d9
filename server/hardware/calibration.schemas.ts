import { z } from "zod";

// LeRobot's calibration, one entry per motor in the robot's order: its MotorCalibration
// dataclass (id, drive_mode, homing_offset, range_min, range_max). Zod only: the agent, the
// portal and the pages all read it.

export const CALIBRATION_FIELDS = ["id", "drive_mode", "homing_offset", "range_min", "range_max"] as const;

const Int = (what: string) => z.number({ error: `${what} must be a number` }).int({ error: `${what} must be a whole number` });

export const MotorCalibrationSchema = z.strictObject({
  id: Int("id").min(0, { error: "id must be 0..252" }).max(252, { error: "id must be 0..252" }),
  drive_mode: Int("drive_mode").min(0, { error: "drive_mode must be 0 or 1" }).max(1, { error: "drive_mode must be 0 or 1" }),
  homing_offset: Int("homing_offset"),
  range_min: Int("range_min").min(0, { error: "range_min must be 0..4095" }).max(4095, { error: "range_min must be 0..4095" }),
  range_max: Int("range_max").min(0, { error: "range_max must be 0..4095" }).max(4095, { error: "range_max must be 0..4095" }),
});
export type MotorCalibration = z.infer<typeof MotorCalibrationSchema>;
export type Calibration = Record<string, MotorCalibration>;

export const CalibrationSchema = z
  .record(z.string().min(1), MotorCalibrationSchema)
  .superRefine((cal, ctx) => {
    for (const [motor, c] of Object.entries(cal)) {
      if (c.range_min > c.range_max) ctx.addIssue({ code: "custom", path: [motor], message: `range_min ${c.range_min} is above range_max ${c.range_max}` });
    }
  });


/**
 * The motors in id order. Postgres keeps JSON objects without their key order, so a
 * calibration that went through the database is put back in the order LeRobot writes it: the
 * robot's motors, which for the arms Gantry sets up (SO-100, SO-101, Koch) is id order.
 */
export function inMotorOrder(cal: Calibration): Calibration {
  return Object.fromEntries(Object.entries(cal).sort(([, a], [, b]) => a.id - b.id));
}
