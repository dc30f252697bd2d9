import type { EvalDataset, MetricOutput, Units } from "./evaluation.schemas";
import { Findings, median, metricOutput, sub } from "./metric-output";
import { isGripper, jointLimits, jointSpan } from "./units";

// r — robot action quality: smooth commands (jerk), joints within their limits in the dataset's
// own units, a gripper that opens and closes, no jumps no arm makes, speeds an arm can reach;
// and the episodes where the arm does not move, or a joint or action dimension never does.

/** A one-frame step past this share of a joint's span is a jump no arm makes. */
const JUMP_SHARE = 0.25;
/** Joint speed past this many spans per second is not one the arm reaches (a full turn in 0.5 s). */
const MAX_SPANS_PER_S = 2;
/** An episode whose joints together move less than this share of their spans is static. */
const STATIC_SHARE = 0.01;
/** A joint that moves less than this share of its span while others move is frozen. */
const FROZEN_SHARE = 0.001;
/** Values this far past a limit (share of the span) are violations, not rounding. */
const LIMIT_SLACK = 0.005;

export function scoreRobot(ds: EvalDataset, units: Units): { output: MetricOutput; jointRanges: { name: string; min: number; max: number; limitMin: number | null; limitMax: number | null }[] } {
  const findings = new Findings();
  const names = ds.names.action.length ? ds.names.action : ds.names.state;
  const dims = Math.max(names.length, ds.episodes[0]?.action[0]?.length ?? 0);
  const jointNames = Array.from({ length: dims }, (_, j) => names[j] ?? `joint ${j}`);
  const limits = jointLimits(units, jointNames);
  const seen = jointNames.map(() => ({ min: Infinity, max: -Infinity }));
  for (const e of ds.episodes) for (const rows of [e.state, e.action]) for (const row of rows) row.forEach((v, j) => {
    if (j < dims && Number.isFinite(v)) {
      seen[j].min = Math.min(seen[j].min, v);
      seen[j].max = Math.max(seen[j].max, v);
    }
  });
  const spans = jointNames.map((_, j) => jointSpan(limits[j], seen[j]));
  const unit = units.kind === "degrees" ? "°" : units.kind === "radians" ? " rad" : "";

  const jerks: number[] = [];
  let frames = 0;
  let outside = 0;
  let jumps = 0;
  let tooFast = 0;
  let gripperMoves = 0;
  const gripper = jointNames.findIndex(isGripper);
  for (const e of ds.episodes) {
    const a = e.action;
    const s = e.state.length ? e.state : a;
    frames += a.length;
    // Movement per joint over the episode.
    const moved = jointNames.map((_, j) => {
      const xs = s.map((r) => r[j]).filter(Number.isFinite);
      return xs.length ? (Math.max(...xs) - Math.min(...xs)) / spans[j] : 0;
    });
    const total = moved.reduce((x, y) => x + y, 0);
    if (s.length > 1 && total < STATIC_SHARE * dims) findings.add(e.index, { flag: "static-episode", detail: `the joints together move ${(total * 100).toFixed(2)} % of their range over ${s.length} frames`, values: { movedShare: total } });
    else {
      moved.forEach((m, j) => {
        if (j !== gripper && m < FROZEN_SHARE) findings.add(e.index, { flag: "frozen-joint", detail: `${jointNames[j]} does not move (${(m * spans[j]).toFixed(3)}${unit} over ${s.length} frames) while others do`, values: { joint: j, moved: m * spans[j] } });
      });
    }
    for (let j = 0; j < dims; j++) {
      const xs = a.map((r) => r[j]);
      if (a.length > 1 && xs.every((x) => x === xs[0])) findings.add(e.index, { flag: "inactive-action", detail: `action ${jointNames[j]} stays at ${xs[0]} for all ${a.length} frames`, values: { joint: j } });
    }
    if (gripper >= 0 && moved[gripper] > 0.05) gripperMoves++;
    // Limits, jumps, speed and jerk.
    let out = 0;
    let episodeJumps = 0;
    const worst = { joint: -1, value: 0 };
    for (let t = 0; t < a.length; t++) {
      for (let j = 0; j < dims; j++) {
        const v = a[t][j];
        const lim = limits[j];
        if (lim && Number.isFinite(v) && (v < lim.min - LIMIT_SLACK * spans[j] || v > lim.max + LIMIT_SLACK * spans[j])) {
          out++;
          if (Math.abs(v) > Math.abs(worst.value)) Object.assign(worst, { joint: j, value: v });
        }
        if (t > 0) {
          const step = Math.abs(v - a[t - 1][j]) / spans[j];
          if (step > JUMP_SHARE) episodeJumps++;
          const speed = (Math.abs(s[t]?.[j] - s[t - 1]?.[j]) / spans[j]) * ds.fps;
          if (speed > MAX_SPANS_PER_S) tooFast++;
        }
        if (t > 2) {
          const jerk = (a[t][j] - 3 * a[t - 1][j] + 3 * a[t - 2][j] - a[t - 3][j]) / spans[j];
          if (Number.isFinite(jerk)) jerks.push(Math.abs(jerk));
        }
      }
    }
    outside += out;
    jumps += episodeJumps;
    if (out) findings.add(e.index, { flag: "limit-violation", detail: `${out} value(s) beyond the limits; worst ${jointNames[worst.joint]} at ${worst.value.toFixed(1)}${unit}`, values: { count: out, worst: worst.value } });
    if (episodeJumps) findings.add(e.index, { flag: "discontinuity", detail: `${episodeJumps} one-frame jump(s) of more than ${JUMP_SHARE * 100} % of a joint's range`, values: { count: episodeJumps } });
  }
  const cells = Math.max(1, frames * dims);
  const jerk = jerks.length ? median(jerks) : null;
  const subScores = [
    sub("jerk", "Smoothness (jerk)", jerk === null ? null : 1 - Math.min(1, jerk / 0.01), jerk, "Median third difference of the action per frame, as a share of each joint's range (0.01 or more scores 0)"),
    sub("limits", "Joint-limit compliance", units.kind === "unknown" ? null : 1 - Math.min(1, (20 * outside) / cells), outside, `Action values beyond each joint's limits, in ${units.kind === "range-100" ? "the −100..100 range" : units.kind}; each costs twenty times its share`, "values"),
    sub("gripper", "Gripper behaviour", gripper < 0 ? null : gripperMoves / Math.max(1, ds.episodes.length), gripperMoves, "Share of episodes in which the gripper opens or closes (moves over 5 % of its range)", "episodes"),
    sub("discontinuities", "No discontinuities", 1 - Math.min(1, (100 * jumps) / cells), jumps, `One-frame action jumps past ${JUMP_SHARE * 100} % of a joint's range`, "jumps"),
    sub("velocity", "Velocity feasibility", 1 - Math.min(1, (20 * tooFast) / cells), tooFast, `Joint speeds past ${MAX_SPANS_PER_S} ranges per second (faster than the arm turns)`, "frames"),
  ];
  const output = metricOutput("r", subScores, findings, {
    summary: (s) => (s === null ? "No joint values to judge" : `${outside} value(s) beyond limits, ${jumps} jump(s), ${findings.count("static-episode")} static and ${findings.count("frozen-joint")} frozen-joint episode(s)`),
    notes: [units.reason],
  });
  return { output, jointRanges: jointNames.map((name, j) => ({ name, min: Number.isFinite(seen[j].min) ? seen[j].min : 0, max: Number.isFinite(seen[j].max) ? seen[j].max : 0, limitMin: limits[j]?.min ?? null, limitMax: limits[j]?.max ?? null })) };
}

