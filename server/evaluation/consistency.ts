import type { EvalDataset, MetricOutput } from "./evaluation.schemas";
import { clamp01, Findings, mean, metricOutput, sub } from "./metric-output";

// a — action consistency: does each action predict the state change that follows it, do
// episodes of one task move alike, and are actions smooth over time.

/** Points each episode's action trajectory is resampled to, to compare episodes of a task. */
const RESAMPLE = 50;

function pearson(x: number[], y: number[]): number | null {
  const n = Math.min(x.length, y.length);
  if (n < 3) return null;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : null;
}

function resample(rows: number[][], points: number): number[][] {
  if (!rows.length) return [];
  return Array.from({ length: points }, (_, i) => rows[Math.min(rows.length - 1, Math.round((i * (rows.length - 1)) / (points - 1)))]);
}

export function scoreConsistency(ds: EvalDataset): MetricOutput {
  const findings = new Findings();
  const dims = ds.episodes[0]?.action[0]?.length ?? 0;
  const ranges = Array.from({ length: dims }, (_, j) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const e of ds.episodes) for (const r of e.action) if (Number.isFinite(r[j])) {
      lo = Math.min(lo, r[j]);
      hi = Math.max(hi, r[j]);
    }
    return hi > lo ? hi - lo : 1;
  });

  // The command (action − state) against the state change over the next few frames, per joint.
  const correlations: number[] = [];
  const smoothness: number[] = [];
  for (const e of ds.episodes) {
    const k = Math.max(1, Math.round(ds.fps / 10));
    for (let j = 0; j < dims; j++) {
      if (!e.state.length || e.state[0].length <= j) continue;
      const command: number[] = [];
      const change: number[] = [];
      for (let t = 0; t + k < e.action.length && t + k < e.state.length; t++) {
        command.push(e.action[t][j] - e.state[t][j]);
        change.push(e.state[t + k][j] - e.state[t][j]);
      }
      const r = pearson(command, change);
      if (r !== null) correlations.push(r);
    }
    // Smoothness: second differences against first differences of the action.
    let d1 = 0;
    let d2 = 0;
    for (let t = 2; t < e.action.length; t++) for (let j = 0; j < dims; j++) {
      d1 += Math.abs(e.action[t][j] - e.action[t - 1][j]) / ranges[j];
      d2 += Math.abs(e.action[t][j] - 2 * e.action[t - 1][j] + e.action[t - 2][j]) / ranges[j];
    }
    if (d1 > 0) smoothness.push(clamp01(1 - d2 / (2 * d1)));
  }

  // Episodes of one task: mean distance between resampled action trajectories, as a share of range.
  const byTask = new Map<string, number[][][]>();
  for (const e of ds.episodes) {
    if (e.action.length < 2) continue;
    const list = byTask.get(e.task) ?? [];
    list.push(resample(e.action, RESAMPLE));
    byTask.set(e.task, list);
  }
  const taskScores: number[] = [];
  for (const trajectories of byTask.values()) {
    if (trajectories.length < 2) continue;
    const distances: number[] = [];
    for (let a = 0; a < trajectories.length; a++) for (let b = a + 1; b < trajectories.length && distances.length < 2000; b++) {
      let d = 0;
      for (let i = 0; i < RESAMPLE; i++) for (let j = 0; j < dims; j++) d += Math.abs(trajectories[a][i][j] - trajectories[b][i][j]) / ranges[j];
      distances.push(d / (RESAMPLE * Math.max(1, dims)));
    }
    // Half a range apart on average is as different as trajectories get.
    taskScores.push(clamp01(1 - mean(distances) / 0.5));
  }
  const corr = correlations.length ? mean(correlations) : null;
  const subScores = [
    sub("action-state", "Action predicts the state change", corr === null ? null : clamp01(corr), corr, "Correlation, per joint, between the command (action − state) and how the state moves over the next 0.1 s (1: the arm goes where it is told)"),
    sub("task-consistency", "Episodes of a task move alike", taskScores.length ? mean(taskScores) : null, taskScores.length ? 1 - mean(taskScores) : null, "How close the action trajectories of episodes with the same task are, resampled to 50 points (the value: their mean distance as a share of half a joint's range)"),
    sub("smoothness", "Temporal smoothness", smoothness.length ? mean(smoothness) : null, smoothness.length ? mean(smoothness) : null, "How little actions change direction from frame to frame (second against first differences)"),
  ];
  return metricOutput("a", subScores, findings, {
    summary: (s) => (s === null ? "Too little motion to judge the actions" : corr !== null && corr < 0.3 ? "Actions predict the arm's motion poorly" : "Actions predict where the arm goes"),
  });
}
