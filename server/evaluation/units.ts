import type { EvalDataset, Units } from "./evaluation.schemas";

// Joint values come in the dataset's own units: LeRobot records SO-100/SO-101/Koch joints in
// degrees or in its normalised range (−100..100, the gripper 0..100), and some datasets in
// radians. The units decide the limits a joint is checked against, so they are decided from the
// values (with the robot type and feature names) and said in the report — never assumed.

const ARMS = /so[-_]?10[01]|koch/i;
export const isGripper = (name: string) => /gripper|claw|jaw/i.test(name);

export interface JointLimits {
  min: number;
  max: number;
}

export function decideUnits(ds: EvalDataset): Units {
  const names = ds.names.state.length ? ds.names.state : ds.names.action;
  let maxAbs = 0;
  let moving = 0;
  for (const e of ds.episodes) {
    for (const rows of [e.state, e.action]) {
      for (const row of rows) {
        row.forEach((v, j) => {
          if (!Number.isFinite(v) || isGripper(names[j] ?? "")) return;
          maxAbs = Math.max(maxAbs, Math.abs(v));
        });
      }
    }
    if (e.state.length > 1) moving++;
  }
  const arm = ds.robotType && ARMS.test(ds.robotType) ? ds.robotType : null;
  if (!moving || maxAbs === 0) return { kind: "unknown", reason: "The dataset holds no joint values to judge units from" };
  // A joint swinging past ±π cannot be in radians; one past ±100 cannot be in the ±100 range.
  if (maxAbs <= 3.5) return { kind: "radians", reason: `Every joint stays within ±${maxAbs.toFixed(2)}, the span of radians (±π); limits are checked at ±π` };
  if (maxAbs > 100.5) return { kind: "degrees", reason: `Joints reach ±${maxAbs.toFixed(1)}, beyond LeRobot's normalised ±100 range, so they are degrees; limits are checked at ±180° (the motors' full turn), the gripper at 0..100` };
  if (arm) {
    return {
      kind: "range-100",
      reason: `Joints stay within ±${maxAbs.toFixed(1)}, as LeRobot's normalised range for ${arm} does (−100..100, the gripper 0..100); degrees within ±100 would read the same, so limits are checked at ±100, which holds for both`,
    };
  }
  return { kind: "unknown", reason: `Joints stay within ±${maxAbs.toFixed(1)} and the robot type (${ds.robotType ?? "none"}) does not say which range that is; joint limits are not checked` };
}

/** The limits of each joint in the dataset's units, or null where they are not known. */
export function jointLimits(units: Units, names: string[]): (JointLimits | null)[] {
  return names.map((name) => {
    if (isGripper(name) && (units.kind === "degrees" || units.kind === "range-100")) return { min: 0, max: 100 };
    if (units.kind === "degrees") return { min: -180, max: 180 };
    if (units.kind === "range-100") return { min: -100, max: 100 };
    if (units.kind === "radians") return { min: -Math.PI, max: Math.PI };
    return null;
  });
}

/** The span a joint may cover: its limits, or what the dataset shows when they are not known. */
export function jointSpan(limits: JointLimits | null, seen: { min: number; max: number }): number {
  const span = limits ? limits.max - limits.min : seen.max - seen.min;
  return span > 0 ? span : 1;
}
