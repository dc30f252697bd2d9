// LeRobot's calibration file, byte for byte: draccus.dump(..., indent=4) of
// dict[str, MotorCalibration] is json.dump with indent=4 — fields in the dataclass's order,
// motors in the robot's order, no trailing newline.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export { CALIBRATION_FIELDS, CalibrationSchema, MotorCalibrationSchema, type Calibration, type MotorCalibration } from "../../server/hardware/calibration.schemas";
import { CALIBRATION_FIELDS, CalibrationSchema, type Calibration } from "../../server/hardware/calibration.schemas";

/** Python's json.dumps(indent=4) for this shape: ints and nested objects only. */
export function formatCalibration(cal: Calibration): string {
  const motors = Object.entries(cal).map(([name, c]) => {
    const fields = CALIBRATION_FIELDS.map((f) => `        "${f}": ${c[f]}`).join(",\n");
    return `    ${pythonString(name)}: {\n${fields}\n    }`;
  });
  return motors.length ? `{\n${motors.join(",\n")}\n}` : "{}";
}

// json.dumps's default ensure_ascii=True: non-ASCII as \uXXXX.
function pythonString(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Parses and validates; each problem names the motor and field. */
export function parseCalibration(text: string, source = "calibration file"): Calibration {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source} is not valid JSON: ${(err as Error).message}`);
  }
  const r = CalibrationSchema.safeParse(data);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(top level)"}: ${i.message}`);
    throw new Error(`${source} is not a LeRobot calibration: ${problems.join("; ")}`);
  }
  return r.data;
}

export type CalibrationKind = "robots" | "teleoperators";

/** LeRobot's HF_LEROBOT_CALIBRATION, else HF_LEROBOT_HOME/calibration, else HF_HOME/lerobot/calibration. */
export function calibrationRoot(env: Record<string, string | undefined> = process.env, home = os.homedir()): string {
  const expand = (p: string) => (p === "~" || p.startsWith("~/") ? path.join(home, p.slice(1)) : p);
  if (env.HF_LEROBOT_CALIBRATION) return expand(env.HF_LEROBOT_CALIBRATION);
  if (env.HF_LEROBOT_HOME) return path.join(expand(env.HF_LEROBOT_HOME), "calibration");
  const hfHome = env.HF_HOME ? expand(env.HF_HOME) : path.join(expand(env.XDG_CACHE_HOME ?? "~/.cache"), "huggingface");
  return path.join(hfHome, "lerobot", "calibration");
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** e.g. robots/so101_follower/my_arm.json under the calibration root. */
export function calibrationPath({ kind, type, id }: { kind: CalibrationKind; type: string; id: string }, env: Record<string, string | undefined> = process.env, home = os.homedir()): string {
  for (const [what, v] of [["type", type], ["id", id]] as const)
    if (!SAFE_NAME.test(v) || v.includes("..")) throw new Error(`Calibration ${what} "${v}" must be letters, digits, '_', '-' or '.'`);
  return path.join(calibrationRoot(env, home), kind, type, `${id}.json`);
}

/** Reads and validates a calibration file; a missing one says where it was looked for. */
export function loadCalibration(file: string): Calibration {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`No calibration at ${file} — calibrate the arm first`, { cause: err });
    throw err;
  }
  return parseCalibration(text, file);
}

/** Writes LeRobot's file through a temporary one, so LeRobot never reads half a file. */
export function saveCalibration(file: string, cal: Calibration): void {
  const checked = CalibrationSchema.parse(cal);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, formatCalibration(checked));
  fs.renameSync(tmp, file);
}

export const HALF_TURN = 2047;

/**
 * LeRobot's Feetech homing: with the offset cleared, a joint at `present` gets
 * Homing_Offset = present − 2047 so it then reads 2047. The register is sign-magnitude with
 * bit 11, so a magnitude above 2047 cannot be written: refuse, naming the joint.
 */
export function computeHomingOffsets(positions: Record<string, number>, { resolution = 4096 }: { resolution?: number } = {}): Record<string, number> {
  const half = Math.trunc((resolution - 1) / 2);
  const out: Record<string, number> = {};
  const refused: string[] = [];
  for (const [joint, present] of Object.entries(positions)) {
    const offset = present - half;
    if (Math.abs(offset) > 2047) refused.push(`${joint} reads ${present}, which needs an offset of ${offset}`);
    out[joint] = offset;
  }
  if (refused.length)
    throw new Error(`Cannot home: ${refused.join("; ")} — the Homing_Offset register holds at most ±2047. Move ${refused.length > 1 ? "those joints" : "that joint"} to the middle of its range (the arm's rest pose) and try again.`);
  return out;
}
