import type { EvalDataset, MetricOutput } from "./evaluation.schemas";
import { Findings, mean, median, metricOutput, sub } from "./metric-output";

// t — trajectory quality: are the frames where the fps says they are (jitter, gaps, dropped
// frames), does the state follow the action without a long lag, and is every value a number.

/** Interval spread (std ÷ 1/fps) past which timestamps are called jittery: a quarter frame. */
const JITTER_FLAG = 0.25;
/** An interval this many frame periods long holds dropped frames. */
const GAP_PERIODS = 1.5;
/** The lags (frames) searched for state following action. */
const MAX_LAG = 15;
/** A follower arm trails its command by a few frames; past this (and 0.2 s) it is flagged. */
const LAG_FLAG_FRAMES = 6;

/** Frames by which the state best follows the action (per moving joint, the median), or null. */
export function stateActionLag(state: number[][], action: number[][]): number | null {
  const n = Math.min(state.length, action.length);
  if (n < MAX_LAG * 3) return null;
  const lags: number[] = [];
  const dims = Math.min(state[0]?.length ?? 0, action[0]?.length ?? 0);
  for (let j = 0; j < dims; j++) {
    const a = action.slice(0, n).map((r) => r[j]);
    const s = state.slice(0, n).map((r) => r[j]);
    const range = Math.max(...a) - Math.min(...a);
    if (!(range > 0) || a.some((x) => !Number.isFinite(x))) continue;
    let best = 0;
    let bestErr = Infinity;
    for (let lag = 0; lag <= MAX_LAG; lag++) {
      let err = 0;
      for (let t = 0; t + lag < n; t++) err += (s[t + lag] - a[t]) ** 2;
      err /= n - lag;
      if (err < bestErr) {
        bestErr = err;
        best = lag;
      }
    }
    lags.push(best);
  }
  return lags.length ? median(lags) : null;
}

export function scoreTrajectory(ds: EvalDataset): MetricOutput {
  const findings = new Findings();
  const period = 1 / ds.fps;
  const jitterScores: number[] = [];
  const lagScores: number[] = [];
  let dropped = 0;
  let frames = 0;
  let values = 0;
  let bad = 0;
  for (const e of ds.episodes) {
    frames += e.timestamps.length;
    const dt = e.timestamps.slice(1).map((t, i) => t - e.timestamps[i]);
    if (dt.length >= 3) {
      const spread = Math.sqrt(mean(dt.map((d) => (d - period) ** 2)));
      jitterScores.push(1 - Math.min(1, spread / period));
      const gaps = dt.filter((d) => d > GAP_PERIODS * period);
      const lost = gaps.reduce((n, d) => n + Math.round(d / period) - 1, 0);
      dropped += lost;
      if (lost > 0) findings.add(e.index, { flag: "dropped-frames", detail: `${lost} frame(s) missing in ${gaps.length} gap(s), the longest ${(Math.max(...gaps) * 1000).toFixed(0)} ms`, values: { dropped: lost, longestGapMs: Math.max(...gaps) * 1000 } });
      const nonGap = dt.filter((d) => d <= GAP_PERIODS * period);
      const jitter = nonGap.length >= 3 ? Math.sqrt(mean(nonGap.map((d) => (d - period) ** 2))) / period : 0;
      if (jitter > JITTER_FLAG || dt.some((d) => d <= 0)) findings.add(e.index, { flag: "jittery-timestamps", detail: `frame intervals vary by ${(jitter * 100).toFixed(0)} % of 1/fps${dt.some((d) => d <= 0) ? ", and some do not move forward" : ""}`, values: { jitter } });
    }
    let episodeBad = 0;
    for (const rows of [e.state, e.action]) for (const row of rows) for (const v of row) {
      values++;
      if (!Number.isFinite(v)) episodeBad++;
    }
    for (const t of e.timestamps) if (!Number.isFinite(t)) episodeBad++;
    bad += episodeBad;
    if (episodeBad) findings.add(e.index, { flag: "not-finite", detail: `${episodeBad} value(s) are NaN or infinite`, values: { count: episodeBad } });
    const lag = stateActionLag(e.state, e.action);
    if (lag !== null) {
      lagScores.push(lag <= 3 ? 1 : Math.max(0, 1 - (lag - 3) / (MAX_LAG - 3)));
      if (lag > LAG_FLAG_FRAMES && lag * period > 0.2) findings.add(e.index, { flag: "state-action-lag", detail: `the state follows the action ${lag} frames (${(lag * period * 1000).toFixed(0)} ms) late`, values: { frames: lag } });
    }
  }
  const subScores = [
    sub("regularity", "Timestamp regularity", jitterScores.length ? mean(jitterScores) : null, jitterScores.length ? 1 - mean(jitterScores) : null, "How close frame intervals are to 1/fps (1: exactly; the value is the spread as a fraction of a frame period)"),
    sub("dropped", "No dropped frames", frames ? 1 - Math.min(1, (10 * dropped) / (frames + dropped)) : null, dropped, "Frames missing from gaps in the timestamps; each missing frame costs ten times its share", "frames"),
    sub("alignment", "Action/state alignment", lagScores.length ? mean(lagScores) : null, lagScores.length ? 1 - mean(lagScores) : null, "How promptly the state follows the action (best-fitting lag per joint; up to 3 frames is full marks)"),
    sub("completeness", "Completeness", values ? 1 - Math.min(1, (100 * bad) / values) : null, bad, "Values that are NaN or infinite; each costs a hundred times its share", "values"),
  ];
  return metricOutput("t", subScores, findings, {
    summary: (s) => (s === null ? "No trajectory could be measured" : dropped || bad ? `${dropped} dropped frame(s) and ${bad} non-finite value(s) across ${ds.episodes.length} episodes` : "Frames arrive at the stated rate and every value is a number"),
  });
}
