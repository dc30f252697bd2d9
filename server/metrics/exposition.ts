// The Prometheus text exposition format (version 0.0.4), written out by hand: it is a few
// rules, and a client library would bring a process-wide registry we do not want.
// https://prometheus.io/docs/instrumenting/exposition_formats/

export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export type Labels = Record<string, string>;

export interface Sample {
  labels?: Labels;
  value: number;
}

export interface HistogramSeries {
  labels?: Labels;
  /** Observations per bucket, not cumulative: one per upper bound, then one above the last. */
  counts: number[];
  sum: number;
}

export type MetricFamily =
  | { name: string; help: string; type: "counter" | "gauge"; samples: Sample[] }
  | { name: string; help: string; type: "histogram"; buckets: readonly number[]; series: HistogramSeries[] };

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** HELP text escapes backslashes and line feeds. */
export const escapeHelp = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
/** Label values escape backslashes, double quotes and line feeds. */
export const escapeLabelValue = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function formatLabels(labels: Labels | undefined, extra?: [string, string]): string {
  const pairs = Object.entries(labels ?? {});
  if (extra) pairs.push(extra);
  if (!pairs.length) return "";
  for (const [name] of pairs) if (!LABEL_NAME.test(name) || name.startsWith("__")) throw new Error(`Not a label name: ${name}`);
  return `{${pairs.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`;
}

/** The whole exposition: each family's HELP and TYPE, then its samples; histograms as _bucket (cumulative, with +Inf), _sum and _count. */
export function renderExposition(families: MetricFamily[]): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const family of families) {
    if (!METRIC_NAME.test(family.name)) throw new Error(`Not a metric name: ${family.name}`);
    if (seen.has(family.name)) throw new Error(`Metric ${family.name} appears twice`);
    seen.add(family.name);
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    if (family.type !== "histogram") {
      for (const s of family.samples) lines.push(`${family.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
      continue;
    }
    for (const s of family.series) {
      if (s.counts.length !== family.buckets.length + 1) throw new Error(`Histogram ${family.name} needs ${family.buckets.length + 1} counts`);
      if (s.labels && "le" in s.labels) throw new Error(`Histogram ${family.name} may not have its own "le" label`);
      let cumulative = 0;
      family.buckets.forEach((bound, i) => {
        cumulative += s.counts[i];
        lines.push(`${family.name}_bucket${formatLabels(s.labels, ["le", formatValue(bound)])} ${cumulative}`);
      });
      cumulative += s.counts[family.buckets.length];
      lines.push(`${family.name}_bucket${formatLabels(s.labels, ["le", "+Inf"])} ${cumulative}`);
      lines.push(`${family.name}_sum${formatLabels(s.labels)} ${formatValue(s.sum)}`);
      lines.push(`${family.name}_count${formatLabels(s.labels)} ${cumulative}`);
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * The `q` quantile (0..1) of a histogram, interpolated linearly inside its bucket as
 * Prometheus's histogram_quantile does; null when empty. Above the top bound it is the top bound.
 */
export function histogramQuantile(buckets: readonly number[], counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i] ?? 0;
    if (count > 0 && below + count >= rank) {
      if (i >= buckets.length) return buckets[buckets.length - 1];
      const lower = i === 0 ? 0 : buckets[i - 1];
      return lower + ((buckets[i] - lower) * Math.max(0, rank - below)) / count;
    }
    below += count;
  }
  return buckets[buckets.length - 1];
}
