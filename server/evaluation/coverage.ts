import type { EvalDataset, MetricOutput } from "./evaluation.schemas";
import { clamp01, Findings, mad, mean, median, metricOutput, sub } from "./metric-output";

// c — coverage: enough episodes and frames, tasks in balance, start positions spread, success
// labels where the dataset has them, and episode lengths without outliers.

/** Episodes at which scale scores full marks (ACT's authors train on ~50 demonstrations). */
const FULL_EPISODES = 50;
/** Frames at which scale scores full marks. */
const FULL_FRAMES = 20_000;
/** A length this many MADs from the median (and half or 1.5× of it) is an outlier. */
const OUTLIER_MADS = 3.5;
/** Per-frame features that label success. */
const SUCCESS_KEYS = ["next.success", "success", "is_success", "episode_success"];

export function scoreCoverage(ds: EvalDataset): MetricOutput {
  const findings = new Findings();
  const n = ds.episodes.length;
  const frames = ds.episodes.reduce((a, e) => a + e.timestamps.length, 0);

  // Tasks: normalised entropy of the episode counts (one task is in balance with itself).
  const tasks = new Map<string, number>();
  for (const e of ds.episodes) tasks.set(e.task, (tasks.get(e.task) ?? 0) + 1);
  const counts = [...tasks.values()];
  const entropy = -counts.reduce((h, c) => h + (c / n) * Math.log(c / n), 0);
  const balance = counts.length <= 1 ? 1 : entropy / Math.log(counts.length);

  // Start positions: spread of each joint's first state across episodes, as a share of its range.
  const dims = ds.episodes[0]?.state[0]?.length ?? 0;
  const spreads: number[] = [];
  for (let j = 0; j < dims; j++) {
    const firsts = ds.episodes.map((e) => e.state[0]?.[j]).filter((x): x is number => Number.isFinite(x));
    const all = ds.episodes.flatMap((e) => e.state.map((r) => r[j])).filter(Number.isFinite);
    const range = Math.max(...all) - Math.min(...all);
    if (firsts.length > 1 && range > 0) spreads.push((Math.max(...firsts) - Math.min(...firsts)) / range);
  }

  // Success labels.
  let labelled = 0;
  let succeeded = 0;
  for (const e of ds.episodes) {
    const key = SUCCESS_KEYS.find((k) => e.extras[k]?.length);
    if (!key) continue;
    labelled++;
    if (e.extras[key].some((v) => v > 0.5)) succeeded++;
  }

  // Length outliers.
  const lengths = ds.episodes.map((e) => e.timestamps.length);
  const mid = median(lengths);
  const spread = Math.max(mad(lengths), mid * 0.05);
  let outliers = 0;
  for (const e of ds.episodes) {
    const len = e.timestamps.length;
    if (n < 4) break;
    if (len < mid - OUTLIER_MADS * spread && len < 0.5 * mid) {
      outliers++;
      findings.add(e.index, { flag: "too-short", detail: `${len} frames against a median of ${mid}`, values: { length: len, median: mid } });
    } else if (len > mid + OUTLIER_MADS * spread && len > 1.5 * mid) {
      outliers++;
      findings.add(e.index, { flag: "too-long", detail: `${len} frames against a median of ${mid}`, values: { length: len, median: mid } });
    }
  }

  const subScores = [
    sub("episodes", "Episodes", clamp01(n / FULL_EPISODES), n, `Episodes in the dataset (${FULL_EPISODES} or more scores 1)`, "episodes"),
    sub("frames", "Frames", clamp01(frames / FULL_FRAMES), frames, `Frames in the dataset (${FULL_FRAMES.toLocaleString("en")} or more scores 1)`, "frames"),
    sub("task-balance", "Task balance", balance, tasks.size, "Normalised entropy of episodes per task (1: every task has as many episodes; the value is the task count)", "tasks"),
    sub("start-spread", "Start positions spread", spreads.length ? clamp01(mean(spreads) / 0.2) : null, spreads.length ? mean(spreads) : null, "How far apart episodes start, per joint, as a share of the range the joint covers (a fifth of it or more scores 1)"),
    sub("success", "Success labels", labelled ? succeeded / labelled : null, labelled, "Share of labelled episodes marked successful (null: the dataset has no success labels)", "labelled episodes"),
    sub("lengths", "Episode lengths without outliers", n ? 1 - outliers / n : null, outliers, `Episodes whose length lies more than ${OUTLIER_MADS} MADs from the median`, "outliers"),
  ];
  return metricOutput("c", subScores, findings, {
    summary: () => `${n} episodes, ${frames.toLocaleString("en")} frames, ${tasks.size} task(s)${outliers ? `, ${outliers} of unusual length` : ""}`,
    notes: labelled ? [] : ["The dataset has no success labels (next.success or similar); success is not scored"],
  });
}
