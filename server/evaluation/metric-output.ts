import { METRIC_NAMES, type Finding, type MetricCode, type MetricOutput, type SubScore } from "./evaluation.schemas";

// What every metric module builds its answer from: sub-scores in, a metric result out (the mean
// of the sub-scores that could be measured), and findings collected by episode.

export const clamp01 = (x: number) => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);

export function sub(key: string, label: string, score: number | null, value: number | null, explain: string, unit = ""): SubScore {
  return { key, label, score: score === null ? null : Number(clamp01(score).toFixed(4)), value: value === null || !Number.isFinite(value) ? null : Number(value.toPrecision(6)), unit, explain };
}

export class Findings {
  readonly byEpisode = new Map<number, Finding[]>();
  add(index: number, finding: Finding): void {
    const list = this.byEpisode.get(index) ?? [];
    list.push(finding);
    this.byEpisode.set(index, list);
  }
  /** Episodes that have this flag. */
  count(flag: Finding["flag"]): number {
    let n = 0;
    for (const list of this.byEpisode.values()) if (list.some((f) => f.flag === flag)) n++;
    return n;
  }
}

export function metricOutput(code: MetricCode, subScores: SubScore[], findings: Findings, { summary, notes = [] }: { summary: (score: number | null) => string; notes?: string[] }): MetricOutput {
  const measured = subScores.filter((s) => s.score !== null).map((s) => s.score!);
  const score = measured.length ? Number((measured.reduce((a, b) => a + b, 0) / measured.length).toFixed(4)) : null;
  return { result: { code, name: METRIC_NAMES[code], score, summary: summary(score), subScores, notes }, findings: findings.byEpisode };
}

export const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
export function std(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}
/** Median absolute deviation, scaled to a standard deviation for normal data. */
export const mad = (xs: number[]) => {
  const m = median(xs);
  return 1.4826 * median(xs.map((x) => Math.abs(x - m)));
};
