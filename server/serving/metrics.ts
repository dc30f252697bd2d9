// Prometheus counters and a latency histogram per endpoint, rendered in the text format.

export type Outcome = "success" | "bad_request" | "rate_limited" | "timeout" | "error";
const outcomes: Outcome[] = ["success", "bad_request", "rate_limited", "timeout", "error"];
/** Upper bounds (seconds) of the latency histogram; the request statistics use the same ones. */
export const latencyBuckets: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const buckets = latencyBuckets;

interface Series {
  orgId: string;
  name: string;
  counts: Record<Outcome, number>;
  bucketCounts: number[];
  sum: number;
  count: number;
}

const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

export class ServingMetrics {
  /** By organisation and endpoint name: the series' labels. */
  private readonly series = new Map<string, Series>();
  /** The same series by endpoint id, so a request finds its own without building a key. */
  private readonly byEndpoint = new Map<string, Series>();

  observe(endpoint: { id: string; orgId: string; name: string }, outcome: Outcome, seconds: number): void {
    let s = this.byEndpoint.get(endpoint.id);
    if (s === undefined || s.name !== endpoint.name || s.orgId !== endpoint.orgId) {
      const key = `${endpoint.orgId}/${endpoint.name}`;
      s = this.series.get(key);
      if (!s) {
        s = { orgId: endpoint.orgId, name: endpoint.name, counts: { success: 0, bad_request: 0, rate_limited: 0, timeout: 0, error: 0 }, bucketCounts: buckets.map(() => 0), sum: 0, count: 0 };
        this.series.set(key, s);
      }
      this.byEndpoint.set(endpoint.id, s);
    }
    s.counts[outcome]++;
    s.sum += seconds;
    s.count++;
    for (let i = buckets.length - 1; i >= 0 && seconds <= buckets[i]; i--) s.bucketCounts[i]++;
  }

  /**
   * The exposition text; `gauges` adds the live figures (in flight, queued) per endpoint. With
   * `orgId`, only that organisation's series: one organisation never sees another's endpoints.
   */
  render(gauges: Array<{ orgId: string; name: string; active: number; queued: number }>, orgId?: string): string {
    const series = [...this.series.values()].filter((s) => orgId === undefined || s.orgId === orgId);
    const live = gauges.filter((g) => orgId === undefined || g.orgId === orgId);
    const lines: string[] = [];
    const labels = (s: { orgId: string; name: string }) => `org="${escape(s.orgId)}",endpoint="${escape(s.name)}"`;
    lines.push("# HELP gantry_serve_requests_total Inference requests by endpoint and outcome.", "# TYPE gantry_serve_requests_total counter");
    for (const s of series) for (const o of outcomes) lines.push(`gantry_serve_requests_total{${labels(s)},outcome="${o}"} ${s.counts[o]}`);
    lines.push("# HELP gantry_serve_request_duration_seconds Inference request latency, queueing included.", "# TYPE gantry_serve_request_duration_seconds histogram");
    for (const s of series) {
      buckets.forEach((b, i) => lines.push(`gantry_serve_request_duration_seconds_bucket{${labels(s)},le="${b}"} ${s.bucketCounts[i]}`));
      lines.push(`gantry_serve_request_duration_seconds_bucket{${labels(s)},le="+Inf"} ${s.count}`);
      lines.push(`gantry_serve_request_duration_seconds_sum{${labels(s)}} ${s.sum}`);
      lines.push(`gantry_serve_request_duration_seconds_count{${labels(s)}} ${s.count}`);
    }
    lines.push("# HELP gantry_serve_requests_in_flight Requests running now.", "# TYPE gantry_serve_requests_in_flight gauge");
    for (const g of live) lines.push(`gantry_serve_requests_in_flight{${labels(g)}} ${g.active}`);
    lines.push("# HELP gantry_serve_requests_queued Requests waiting for a slot.", "# TYPE gantry_serve_requests_queued gauge");
    for (const g of live) lines.push(`gantry_serve_requests_queued{${labels(g)}} ${g.queued}`);
    return lines.join("\n") + "\n";
  }
}

/** Index into a histogram of `latencyBuckets.length + 1` counts: the first bound at or above `seconds`, or the last (overflow) slot. */
export function latencyBucketIndex(seconds: number): number {
  for (let i = 0; i < buckets.length; i++) if (seconds <= buckets[i]) return i;
  return buckets.length;
}

/**
 * The `p`th percentile (0..100) in milliseconds estimated from histogram counts (one per bound,
 * then the overflow), interpolating linearly inside the bucket as Prometheus does; null when empty.
 * Past the top bound it can only say "at least the top bound".
 */
export function estimatePercentileMs(counts: readonly number[], p: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = (p / 100) * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i] ?? 0;
    if (count > 0 && below + count >= rank) {
      if (i >= buckets.length) return buckets[buckets.length - 1] * 1000;
      const lower = i === 0 ? 0 : buckets[i - 1];
      const seconds = lower + (buckets[i] - lower) * Math.max(0, rank - below) / count;
      return Math.round(seconds * 1e6) / 1e3;
    }
    below += count;
  }
  return buckets[buckets.length - 1] * 1000;
}
